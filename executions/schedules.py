"""Keep django-celery-beat entries in step with flows that use `trigger.schedule`.

Each active scheduled flow owns one PeriodicTask named `flow-<id>-schedule`. Activating,
editing, pausing, archiving or deleting the flow updates or removes it, so staff see the
real schedules in the admin (Periodic tasks) and beat never fires for a paused flow.
"""

from __future__ import annotations

import json

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from flows.config_checks import crontab_from_expression
from flows.models import Flow

TASK = "executions.tasks.run_scheduled_flow"


def task_name(flow_id: int) -> str:
    return f"flow-{flow_id}-schedule"


@transaction.atomic
def sync_schedule(flow: Flow) -> PeriodicTask | None:
    trigger = flow.trigger
    if flow.status != Flow.Status.ACTIVE or not trigger or trigger["type"] != "trigger.schedule":
        remove_schedules([flow.pk])
        return None
    config = trigger.get("config", {})
    minute, hour, day_of_month, month, day_of_week = config["cron"].split()
    crontab_from_expression(config["cron"])  # validated already; fail loudly if not
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
        timezone=config.get("timezone", "UTC"),
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=task_name(flow.pk),
        defaults={
            "task": TASK,
            "crontab": schedule,
            "interval": None,
            "args": json.dumps([flow.pk]),
            "enabled": True,
            "description": f"Runs flow {flow.pk} ({flow.name[:100]})",
        },
    )
    return task


def remove_schedules(flow_ids: list[int]) -> int:
    deleted, _ = PeriodicTask.objects.filter(name__in=[task_name(flow_id) for flow_id in flow_ids]).delete()
    return deleted
