"""Celery tasks: thin shells that load, claim, run and save (see executions/runner.py)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.queue import publish
from executions import runner
from executions.models import FlowExecution, close_open_step_sql

logger = logging.getLogger(__name__)

# Parked runs due within this window are enqueued with a countdown; later ones are picked
# up by the sweeper, so no worker holds a message for hours.
COUNTDOWN_WINDOW = timedelta(minutes=5)
SWEEP_BATCH = 500
# A run whose worker died this many times is failed rather than resumed again: a step that
# kills its worker (memory, a crash in a library) must not take down one worker after another.
MAX_RECOVERIES = 5


@shared_task(ignore_result=True, acks_late=True)
def run_execution(execution_id: int) -> None:
    outcome = runner.run(execution_id)
    if outcome is not None:
        logger.info("execution %s: %s", execution_id, outcome.status)


SWEPT = "the sweeper sends it again"


def enqueue(execution_id: int) -> None:
    publish(run_execution, (execution_id,), backstop=SWEPT)


def schedule_resume(execution_id: int, resume_at: datetime) -> None:
    delay = (resume_at - timezone.now()).total_seconds()
    if delay <= COUNTDOWN_WINDOW.total_seconds():
        publish(run_execution, (execution_id,), countdown=max(delay, 0), backstop=SWEPT)


_RECOVERED_STATUS = (
    "CASE WHEN cancel_requested THEN 'cancelled' WHEN recoveries >= %(max)s THEN 'failed' ELSE 'pending' END"
)
_RECOVERED_ERROR = (
    "CASE WHEN cancel_requested THEN 'Cancelled on request.' WHEN recoveries >= %(max)s THEN %(gave_up)s ELSE error END"
)
# A run that ends here may leave its last step open (the `running` intent of a call its
# worker died in): that step is closed with the run.
RECOVER_STALE_SQL = f"""
UPDATE flow_executions SET
    status = {_RECOVERED_STATUS},
    completed_at = CASE WHEN cancel_requested OR recoveries >= %(max)s THEN now() ELSE NULL END,
    error = {_RECOVERED_ERROR},
    execution_log = CASE WHEN cancel_requested OR recoveries >= %(max)s
        THEN {close_open_step_sql(_RECOVERED_STATUS, _RECOVERED_ERROR)} ELSE execution_log END,
    lease = NULL, enqueued_at = now(), recoveries = recoveries + 1
WHERE id IN (
    SELECT id FROM flow_executions
    WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => %(stale)s)
    ORDER BY heartbeat_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED
) AND status = 'running'
RETURNING id, status
"""  # noqa: S608 (fixed SQL fragments)
REQUEUE_SQL = """
UPDATE flow_executions SET enqueued_at = now()
WHERE id IN (
    SELECT id FROM flow_executions
    WHERE (status = 'pending' AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => %s)))
       OR (status = 'waiting' AND resume_at <= now()
           AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => %s)))
    LIMIT %s FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


@shared_task(ignore_result=True)
def sweep_executions() -> dict:
    """Find runs nobody is working on and hand them to a worker again.

    - running with a stale heartbeat: the worker died (kill -9, OOM, lost machine);
    - pending for a while: the broker lost the message (Redis flushed or restarted);
    - waiting and due: the countdown message was lost, or the delay was long.
    The claim in runner.run() makes a duplicate message harmless.
    """
    requeue_after = settings.EXECUTION_PENDING_REQUEUE_SECONDS
    with connection.cursor() as cursor:
        cursor.execute(
            RECOVER_STALE_SQL,
            {
                "max": MAX_RECOVERIES,
                "gave_up": f"Stopped: its worker died {MAX_RECOVERIES + 1} times while running it.",
                "stale": settings.EXECUTION_HEARTBEAT_TIMEOUT,
                "batch": SWEEP_BATCH,
            },
        )
        recovered = cursor.fetchall()
        cursor.execute(REQUEUE_SQL, [requeue_after, requeue_after, SWEEP_BATCH])
        requeued = [row[0] for row in cursor.fetchall()]
    resumed = [execution_id for execution_id, status in recovered if status == "pending"]
    for execution_id in resumed + requeued:
        enqueue(execution_id)
    if recovered or requeued:
        logger.warning(
            "sweeper: recovered %d stale running, re-enqueued %d pending or due", len(recovered), len(requeued)
        )
    return {"recovered": len(recovered), "requeued": len(requeued)}


# Versions (flows/models.py) no run refers to that are not their flow's current graph: an
# edited flow's old graphs, once their runs are gone. The current graph is compared as jsonb
# (key order does not matter). Locked rows are skipped: a run being created holds its
# version's row (FOR KEY SHARE), so a version is never deleted under a new run.
PURGE_VERSIONS_SQL = """
DELETE FROM flow_versions WHERE id IN (
    SELECT v.id FROM flow_versions AS v JOIN flows AS f ON f.id = v.flow_id
    WHERE NOT EXISTS (SELECT 1 FROM flow_executions AS e WHERE e.flow_version_id = v.id)
        AND v.flow_data <> f.flow_data
    LIMIT %s FOR UPDATE OF v SKIP LOCKED
)
"""


@shared_task
def purge_old_executions(batch_size: int = 1000) -> int:
    """Delete finished runs older than EXECUTION_RETENTION_DAYS, in batches; never active ones.

    Then the flow versions that only those runs used (purge_unused_versions).
    """
    cutoff = timezone.now() - timedelta(days=settings.EXECUTION_RETENTION_DAYS)
    deleted_total = 0
    while True:
        ids = list(FlowExecution.objects.finished_before(cutoff).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        deleted, _ = FlowExecution.objects.filter(id__in=ids, status__in=FlowExecution.FINISHED_STATUSES).delete()
        deleted_total += deleted
    if deleted_total:
        logger.info("retention: deleted %d executions finished before %s", deleted_total, cutoff.date())
    purge_unused_versions(batch_size)
    return deleted_total


def purge_unused_versions(batch_size: int = 1000) -> int:
    """Delete flow versions no run refers to that are not their flow's current graph.

    One statement per batch (each its own transaction); a short batch means nothing is left.
    """
    deleted_total = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(PURGE_VERSIONS_SQL, [batch_size])
            deleted = cursor.rowcount
        deleted_total += deleted
        if deleted < batch_size:
            break
    if deleted_total:
        logger.info("retention: deleted %d flow versions no run uses", deleted_total)
    return deleted_total


@shared_task(ignore_result=True)
def run_scheduled_flow(flow_id: int) -> None:
    """Fired by beat for `trigger.schedule` flows. One run per scheduled minute, even if
    two beat processes fire (the minute is the dedup key)."""
    from executions.services import start_execution
    from flows.models import Flow

    flow = Flow.objects.filter(pk=flow_id, status=Flow.Status.ACTIVE).defer("webhook_secret").first()
    if flow is None or flow.trigger_type != "trigger.schedule" or "trigger.schedule" in runner.disabled_node_types():
        return
    minute = timezone.now().replace(second=0, microsecond=0)
    start_execution(
        flow=flow,
        trigger_type="trigger.schedule",
        trigger_data={"scheduled_at": minute.isoformat()},
        dedup_key=f"schedule:{minute.isoformat()}",
    )
