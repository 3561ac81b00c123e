"""Checks on node configs that JSON Schema cannot express (cron syntax, safe regexes, URLs).

Each check returns (field, message) pairs. Values that contain templates are checked when
the node runs instead, once they are rendered.
"""

from __future__ import annotations

from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab

from flows.safe_regex import UnsafePatternError, compile_safe


def _has_template(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


def schedule(config: dict) -> list[tuple[str, str]]:
    problems = []
    cron = config.get("cron")
    if isinstance(cron, str):
        try:
            crontab_from_expression(cron)
        except ValueError as exc:
            problems.append(("cron", f"is not a valid cron expression: {exc}"))
    timezone = config.get("timezone", "UTC")
    if isinstance(timezone, str):
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(("timezone", f"{timezone!r} is not a known time zone (use e.g. 'Europe/Paris')."))
    return problems


def crontab_from_expression(expression: str, timezone: str = "UTC") -> crontab:
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("it needs five fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        schedule = crontab(minute, hour, day_of_week, day_of_month, month)
    except Exception as exc:  # celery raises ValueError or its own ParseException
        raise ValueError(str(exc)) from None
    return schedule


def condition(config: dict) -> list[tuple[str, str]]:
    if config.get("op") != "regex":
        return []
    pattern = config.get("right")
    if not isinstance(pattern, str):
        return [("right", "a regex condition needs the pattern as a string.")]
    if _has_template(pattern):
        return []
    try:
        compile_safe(pattern)
    except UnsafePatternError as exc:
        return [("right", str(exc))]
    return []


def http_request(config: dict) -> list[tuple[str, str]]:
    url = config.get("url")
    if not isinstance(url, str):
        return []
    # The scheme is always literal; a templated host is checked at run time (SSRF guard).
    if not url.lower().startswith(("http://", "https://")):
        return [("url", "must start with http:// or https://.")]
    if _has_template(url):
        return []
    parts = urlsplit(url)
    if not parts.hostname:
        return [("url", "must be an absolute URL with a host.")]
    if parts.username or parts.password:
        return [("url", "must not embed credentials; use headers instead.")]
    return []
