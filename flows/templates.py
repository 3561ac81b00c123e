"""Templates in node configs: `{{ trigger.x }}`, `{{ nodes.<id>.x }}`, `{{ vars.x }}`.

Path substitution only. There are no filters, calls or expressions, so a flow author (or a
customer writing a comment) can never make Inflow evaluate code.

A string that is exactly one template keeps the value's type (a number, an object);
templates inside longer text are interpolated as text, objects as JSON, missing values as
an empty string.
"""

from __future__ import annotations

import json
import re
from typing import Any

ROOTS = ("trigger", "nodes", "vars")
TEMPLATE_PATTERN = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
_ANY_BRACES = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
MISSING = object()


class TemplateSyntaxError(ValueError):
    pass


def has_template(value: object) -> bool:
    """Whether a config value is filled in when the node runs (so checkable only then)."""
    return isinstance(value, str) and "{{" in value


def check_template(text: str) -> None:
    """Raise TemplateSyntaxError for anything that is not a plain path template."""
    for match in _ANY_BRACES.finditer(text):
        strict = TEMPLATE_PATTERN.fullmatch(match.group(0))
        if strict is None:
            raise TemplateSyntaxError(f"{match.group(0)!r} is not a template; use {{{{ trigger.field }}}} paths only.")
        root = strict.group(1).split(".", 1)[0]
        if root not in ROOTS:
            raise TemplateSyntaxError(f"{match.group(0)!r} must start with one of: {', '.join(ROOTS)}.")
    remainder = _ANY_BRACES.sub("", text)
    if "{{" in remainder or "}}" in remainder:
        raise TemplateSyntaxError("has unbalanced '{{' or '}}'.")


def lookup(path: str, context: dict[str, Any]) -> Any:
    """Follow a dotted path through dicts and lists; MISSING when it leads nowhere."""
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value


def _as_text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def render_string(text: str, context: dict[str, Any]) -> Any:
    if "{{" not in text:
        return text
    whole = TEMPLATE_PATTERN.fullmatch(text.strip())
    if whole is not None:
        value = lookup(whole.group(1), context)
        return None if value is MISSING else value
    return TEMPLATE_PATTERN.sub(lambda match: _as_text(lookup(match.group(1), context)), text)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a config value (dict keys stay as they are)."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, dict):
        return {key: render(child, context) for key, child in value.items()}
    if isinstance(value, list):
        return [render(child, context) for child in value]
    return value
