"""Keep django-celery-beat entries in step with flows that use `trigger.schedule`.

Each active scheduled flow owns one PeriodicTask named `flow-<id>-schedule`. Activating,
editing, pausing, archiving or deleting the flow updates or removes it, so staff see the
real schedules in the admin (Periodic tasks) and beat never fires for a paused flow. A
CrontabSchedule a flow's task stops using is deleted when no other task uses it.
"""

from __future__ import annotations

import json

from celery.schedules import crontab
from django.db import connection, transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from flows.models import Flow

# By name: the task that starts a run is the executions app's, which flows does not import.
TASK = "executions.tasks.run_scheduled_flow"


def crontab_from_expression(expression: str) -> crontab:
    """The celery crontab of a five-field cron expression; ValueError names what is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError("it needs five fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        schedule = crontab(minute, hour, day_of_week, day_of_month, month)
    except Exception as exc:  # celery raises ValueError or its own ParseException
        raise ValueError(str(exc)) from None
    return schedule


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
    fields = {
        "minute": minute,
        "hour": hour,
        "day_of_month": day_of_month,
        "month_of_year": month,
        "day_of_week": day_of_week,
        "timezone": config.get("timezone", "UTC"),
    }
    # Locked until the task below is saved: _delete_unused_crontabs skips a locked row, and
    # one it locked first is gone when this reads it (then a new row is made).
    schedule = CrontabSchedule.objects.select_for_update().filter(**fields).order_by("pk").first()
    if schedule is None:
        schedule = CrontabSchedule.objects.create(**fields)
    name = task_name(flow.pk)
    previous = PeriodicTask.objects.filter(name=name).values_list("crontab_id", flat=True).first()
    task, _ = PeriodicTask.objects.update_or_create(
        name=name,
        defaults={
            "task": TASK,
            "crontab": schedule,
            "interval": None,
            "args": json.dumps([flow.pk]),
            "enabled": True,
            "description": f"Runs flow {flow.pk} ({flow.name[:100]})",
        },
    )
    if previous is not None and previous != schedule.pk:
        _delete_unused_crontabs([previous])
    return task


@transaction.atomic
def remove_schedules(flow_ids: list[int]) -> int:
    tasks = PeriodicTask.objects.filter(name__in=[task_name(flow_id) for flow_id in flow_ids])
    crontab_ids = [pk for pk in tasks.values_list("crontab_id", flat=True) if pk is not None]
    deleted, _ = tasks.delete()
    _delete_unused_crontabs(crontab_ids)
    return deleted


# A raw DELETE: the ORM's would cascade to a task that began using the row meanwhile.
DELETE_UNUSED_CRONTABS_SQL = """
DELETE FROM django_celery_beat_crontabschedule AS c
WHERE c.id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM django_celery_beat_periodictask AS t WHERE t.crontab_id = c.id)
"""


def _delete_unused_crontabs(crontab_ids: list[int]) -> int:
    """Delete these crontabs if no periodic task uses them (beat leaves them behind).

    A row some sync_schedule holds is skipped (it is about to be used); skipping rather than
    waiting also means two flows swapping schedules cannot deadlock.
    """
    if not crontab_ids:
        return 0
    lockable = CrontabSchedule.objects.select_for_update(skip_locked=True).filter(pk__in=crontab_ids)
    ids = list(lockable.values_list("pk", flat=True))
    if not ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(DELETE_UNUSED_CRONTABS_SQL, [ids])
        return cursor.rowcount
