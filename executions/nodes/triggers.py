"""The triggers Inflow itself provides: manual runs, cron schedules, the generic webhook.

Triggers have no handler: the event that starts the run is their output. Meta's triggers
are the tokens app's (tokens/nodes.py), beside the parsers of the events that fire them.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.nodes import NodeSpec, object_schema
from flows.schedules import crontab_from_expression


def check_schedule(config: dict) -> list[tuple[str, str]]:
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


MANUAL = NodeSpec(
    type="trigger.manual",
    name="Manual run",
    category="trigger",
    description="Started from the API or the admin with the trigger data you send.",
    config_schema=object_schema({}),
    trigger=True,
)

SCHEDULE = NodeSpec(
    type="trigger.schedule",
    name="Schedule",
    category="trigger",
    description="Runs on a cron schedule while the flow is active.",
    config_schema=object_schema(
        {
            "cron": {
                "type": "string",
                "minLength": 9,
                "maxLength": 100,
                "description": "Five fields: minute hour day-of-month month day-of-week.",
            },
            "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC"},
        },
        required=("cron",),
    ),
    trigger=True,
    checks=check_schedule,
)

WEBHOOK = NodeSpec(
    type="trigger.webhook",
    name="Webhook",
    category="trigger",
    description="Runs when a JSON body is POSTed to the flow's secret webhook URL.",
    config_schema=object_schema({}),
    trigger=True,
)

NODE_TYPES: tuple[NodeSpec, ...] = (MANUAL, SCHEDULE, WEBHOOK)
