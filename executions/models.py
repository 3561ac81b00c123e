from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import InterfaceError, OperationalError, connection, models
from django.db.models import F, Q
from django.utils import timezone


class FlowExecutionQuerySet(models.QuerySet["FlowExecution"]):
    def finished_before(self, moment) -> FlowExecutionQuerySet:
        return self.filter(status__in=FlowExecution.FINISHED_STATUSES, completed_at__lt=moment)


class FlowExecution(models.Model):
    """One run of a flow: the event that started it, the engine's state and the step log.

    Ownership of a run is a *lease*: a worker claims the row with a conditional UPDATE that
    sets a fresh lease id, and every later write is conditional on that id. A worker that
    lost its lease (presumed dead, then recovered by the sweeper) can no longer write.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING, Status.WAITING)
    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="executions", db_index=False)
    # The graph this run executes, fixed when it is created: editing the flow never changes
    # a run under way. NULL for runs created before versions existed (they run the flow's
    # current graph). Versions go with their flow, as its runs do; the retention cleanup
    # deletes only versions no run refers to.
    flow_version = models.ForeignKey(
        "flows.FlowVersion",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        editable=False,
        related_name="executions",
        db_index=False,
    )
    # Denormalised from the flow so "my executions" is one indexed range scan.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # The trigger node type that started the run; manual runs are "trigger.manual".
    trigger_type = models.CharField(max_length=64, default="trigger.manual")
    trigger_data = models.JSONField(default=dict)
    execution_log = models.JSONField(default=list)
    # When the run was requested; the seed's index orders recent runs by it.
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    dedup_key = models.CharField(max_length=255, null=True, blank=True)

    # Engine bookkeeping.
    state = models.JSONField(default=dict, blank=True)
    lease = models.UUIDField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    resume_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    run_seconds = models.FloatField(default=0)
    recoveries = models.PositiveIntegerField(default=0, help_text="Times the run was resumed after a lost worker.")

    objects = FlowExecutionQuerySet.as_manager()

    class Meta:
        db_table = "flow_executions"
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index("flow", F("started_at").desc(), name="flow_executions_flow_started"),
            models.Index("user", F("started_at").desc(), name="flow_executions_user_started"),
            # "Does any run still use this version?" (the retention cleanup, a flow's deletion).
            models.Index(fields=["flow_version"], name="flow_executions_version"),
            # The sweeper's three questions, each answered from a small partial index.
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="flow_executions_running"),
            models.Index(fields=["resume_at"], condition=Q(status="waiting"), name="flow_executions_waiting"),
            models.Index(fields=["enqueued_at"], condition=Q(status="pending"), name="flow_executions_pending"),
            # Time ranges across all runs (the admin's hourly chart): tiny, and a good fit for
            # an append-mostly table whose physical order follows started_at.
            BrinIndex(fields=["started_at"], name="flow_executions_started_brin"),
            models.Index(
                fields=["completed_at"],
                condition=Q(status__in=["succeeded", "failed", "cancelled"]),
                name="flow_executions_finished",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "dedup_key"], condition=Q(dedup_key__isnull=False), name="flow_executions_dedup"
            ),
        ]

    def __str__(self) -> str:
        return f"Execution {self.pk} of flow {self.flow_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    def request_cancel(self) -> bool:
        """Cancel now if nothing runs it, else ask the worker to stop at the next step.

        Returns False when the execution had already finished. One statement: as two, a
        run that parked between them (running, then waiting) was neither cancelled nor
        flagged, and the caller was told it had finished.
        """
        with connection.cursor() as cursor:
            cursor.execute(CANCEL_SQL, [self.pk])
            changed = cursor.rowcount
        self.refresh_from_db(fields=["status", "cancel_requested", "completed_at", "error", "resume_at"])
        return changed == 1


# When an entry is closed by SQL rather than by the engine (engine.py writes the same format).
NOW_ISO_SQL = """to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def close_open_step_sql(ended: str, error: str) -> str:
    """SQL for the log of a run that ends now as `ended` with `error` (SQL expressions).

    A last step still open (the `running` intent of a call, a `waiting` delay) is closed with
    the run, so a finished run's log never shows a step running for ever.
    """
    return f"""CASE WHEN execution_log -> -1 ->> 'status' IN ('running', 'waiting') THEN jsonb_set(
        execution_log, '{{-1}}', execution_log -> -1
            || jsonb_build_object('status', ({ended})::text, 'finished_at', {NOW_ISO_SQL}, 'error', ({error})::text)
            || CASE WHEN execution_log -> -1 ->> 'status' = 'running' THEN jsonb_build_object('decision',
                'not repeated: the run ended during the call, which may or may not have gone through')
               ELSE '{{}}'::jsonb END)
    ELSE execution_log END"""


# SET expressions read the row as it was before the update.
CANCEL_SQL = f"""
UPDATE flow_executions SET
    cancel_requested = (status = 'running'),
    status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,
    completed_at = CASE WHEN status = 'running' THEN completed_at ELSE now() END,
    error = CASE WHEN status = 'running' THEN error ELSE 'Cancelled on request.' END,
    lease = CASE WHEN status = 'running' THEN lease ELSE NULL END,
    resume_at = CASE WHEN status = 'running' THEN resume_at ELSE NULL END,
    execution_log = CASE WHEN status = 'running' THEN execution_log
        ELSE {close_open_step_sql("'cancelled'", "'Cancelled on request.'")} END
WHERE id = %s AND status IN ('pending', 'running', 'waiting')
"""  # noqa: S608 (fixed SQL fragments)

# The graph is the run's version; runs from before versions existed read the flow's current
# one (COALESCE evaluates the second subquery only for them).
# Committed without waiting for the WAL flush (see executions/runner.py, "Durability"): a
# claim lost with a crashed database server leaves the run to the sweeper, nothing more.
CLAIM_SQL = """
UPDATE flow_executions AS e
SET status = 'running', lease = %(lease)s, heartbeat_at = now(), resume_at = NULL
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS durability
WHERE e.id = %(id)s AND NOT e.cancel_requested AND (
    e.status = 'pending'
    OR (e.status = 'waiting' AND e.resume_at <= now())
    OR (e.status = 'running' AND e.heartbeat_at < now() - make_interval(secs => %(stale)s))
)
RETURNING e.id, e.flow_id, e.user_id, e.trigger_data, e.state,
    COALESCE(
        (SELECT v.flow_data FROM flow_versions AS v WHERE v.id = e.flow_version_id),
        (SELECT f.flow_data FROM flows AS f WHERE f.id = e.flow_id)
    ),
    jsonb_array_length(e.execution_log)
"""


def claim(execution_id: int) -> dict | None:
    """Take the lease of a runnable execution; None when it is not ours to run.

    One conditional UPDATE: two workers given the same id never both win.
    """
    lease = uuid.uuid4()
    params = {"lease": lease, "id": execution_id, "stale": settings.EXECUTION_HEARTBEAT_TIMEOUT}
    try:
        row = _fetch_claim(params)
    except (InterfaceError, OperationalError):
        # A connection the database dropped while the worker was idle: reconnect once.
        connection.close()
        row = _fetch_claim(params)
    if row is None:
        return None
    columns = ["id", "flow_id", "user_id", "trigger_data", "state", "flow_data", "log_length"]
    claimed = dict(zip(columns, row, strict=True))
    claimed["lease"] = lease
    return claimed


def _fetch_claim(params: dict) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        return cursor.fetchone()
