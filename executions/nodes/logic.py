"""The logic nodes: condition, delay, set, stop (each spec below its handler)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flows import safe_regex
from flows.nodes import NodeContext, NodeResult, NodeSpec, PermanentError, object_schema
from flows.templates import has_template

OPERATORS = ["equals", "not_equals", "contains", "starts_with", "ends_with", "gt", "lt", "exists", "regex"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _text(value: Any, case_sensitive: bool) -> str:
    text = "" if value is None else str(value)
    return text if case_sensitive else text.casefold()


def evaluate(left: Any, op: str, right: Any, *, case_sensitive: bool = False) -> bool:
    if op == "exists":
        return left not in (None, "", [], {})
    if op in {"gt", "lt"}:
        a, b = _number(left), _number(right)
        if a is None or b is None:
            raise PermanentError(f"'{op}' compares numbers, got {left!r} and {right!r}.")
        return a > b if op == "gt" else a < b
    if op in {"equals", "not_equals"}:
        a, b = _number(left), _number(right)
        same = (
            a == b if a is not None and b is not None else _text(left, case_sensitive) == _text(right, case_sensitive)
        )
        return same if op == "equals" else not same
    if op == "contains" and isinstance(left, list):
        wanted = _text(right, case_sensitive)
        return any(_text(item, case_sensitive) == wanted for item in left)
    if op == "regex":
        try:
            return safe_regex.search(str(right), "" if left is None else str(left), ignore_case=not case_sensitive)
        except safe_regex.UnsafePatternError as exc:
            raise PermanentError(f"Regex condition: {exc}") from None
    a, b = _text(left, case_sensitive), _text(right, case_sensitive)
    if op == "contains":
        return b in a
    if op == "starts_with":
        return a.startswith(b)
    if op == "ends_with":
        return a.endswith(b)
    raise PermanentError(f"Unknown operator {op!r}.")


def condition(config: dict, ctx: NodeContext) -> NodeResult:
    left, op, right = config.get("left"), config["op"], config.get("right")
    result = evaluate(left, op, right, case_sensitive=config.get("case_sensitive", False))
    shown = left if not isinstance(left, str) else left[:200]
    return NodeResult(output={"result": result, "left": shown, "op": op, "right": right}, port=str(result).lower())


def check_condition(config: dict) -> list[tuple[str, str]]:
    """A literal regex is refused when the flow is saved; a templated one when it runs."""
    if config.get("op") != "regex":
        return []
    pattern = config.get("right")
    if not isinstance(pattern, str):
        return [("right", "a regex condition needs the pattern as a string.")]
    if has_template(pattern):
        return []
    try:
        safe_regex.compile_safe(pattern)
    except safe_regex.UnsafePatternError as exc:
        return [("right", str(exc))]
    return []


CONDITION = NodeSpec(
    type="logic.condition",
    name="Condition",
    category="logic",
    description="Follows the `true` or the `false` port.",
    config_schema=object_schema(
        {
            "left": {"type": "string", "maxLength": 2000},
            "op": {"enum": OPERATORS},
            "right": {"type": ["string", "number", "boolean", "null"]},
            "case_sensitive": {"type": "boolean", "default": False},
        },
        required=("left", "op"),
    ),
    ports=("true", "false"),
    handler=condition,
    checks=check_condition,
)


def delay(config: dict, ctx: NodeContext) -> NodeResult:
    seconds = float(config["seconds"])
    resume_at = ctx.now + timedelta(seconds=seconds)
    return NodeResult(output={"seconds": seconds, "resume_at": resume_at.isoformat()}, wait_until=resume_at)


DELAY = NodeSpec(
    type="logic.delay",
    name="Delay",
    category="logic",
    description="Waits, then continues. The worker is released while waiting.",
    config_schema=object_schema(
        {"seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 30 * 24 * 3600}},
        required=("seconds",),
    ),
    handler=delay,
)


def set_vars(config: dict, ctx: NodeContext) -> NodeResult:
    values = dict(config.get("values") or {})
    return NodeResult(output=values, set_vars=values)


SET = NodeSpec(
    type="logic.set",
    name="Set variables",
    category="logic",
    description="Stores values (templates allowed) under {{ vars.<name> }}.",
    config_schema=object_schema(
        {
            "values": {
                "type": "object",
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                "maxProperties": 50,
            }
        },
        required=("values",),
    ),
    handler=set_vars,
)


def stop(config: dict, ctx: NodeContext) -> NodeResult:
    outcome = config.get("outcome", "succeeded")
    reason = config.get("reason", "")
    return NodeResult(output={"outcome": outcome, "reason": reason}, stop=outcome, stop_reason=reason)


STOP = NodeSpec(
    type="logic.stop",
    name="Stop",
    category="logic",
    description="Ends the run here, as succeeded or failed.",
    config_schema=object_schema(
        {
            "outcome": {"enum": ["succeeded", "failed"], "default": "succeeded"},
            "reason": {"type": "string", "maxLength": 500},
        }
    ),
    ports=(),
    handler=stop,
)

NODE_TYPES: tuple[NodeSpec, ...] = (CONDITION, DELAY, SET, STOP)
