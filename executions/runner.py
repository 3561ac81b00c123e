"""Runs one execution inside a Celery worker: claim, run the engine, save, release.

The engine (executions/engine.py) decides what happens; this module makes it durable:
- `DatabaseJournal` saves each step's log entry together with the engine state in one
  UPDATE that is conditional on the worker's lease, and reads back `cancel_requested`.
- `Heartbeat` keeps `heartbeat_at` fresh from a side thread while a long step runs, so the
  sweeper can tell a slow step from a dead worker.

Durability: only the writes that record a call with side effects (its intent, its outcome)
wait for PostgreSQL to flush its WAL (`synchronous_commit`). The claim, side-effect-free
steps and a run's end commit without waiting: a crash of the database server can lose the
last fraction of a second of them, and the sweeper then resumes the run from its last
durable step, redoing only work that repeats nothing anyone can see. A durable write also
flushes every write before it. Waiting for the flush was a third of a run's cost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone

from executions.engine import Engine, Limits, Outcome, Signal
from executions.models import claim, close_open_step_sql
from flows.graph import trigger_node
from flows.models import NodeType

logger = logging.getLogger(__name__)

# Each write names the log length it expects, so retrying it after a lost connection can
# never append an entry twice (see DatabaseJournal.record).
# `durability` sets synchronous_commit for the statement's own transaction only ('on' or
# 'off', see the module docstring); it is one row, so the UPDATE is unchanged otherwise.
DURABILITY = "(SELECT set_config('synchronous_commit', %(commit)s, true)) AS durability"
APPEND_SQL = f"""
UPDATE flow_executions SET execution_log = execution_log || jsonb_build_array(%(entry)s::jsonb),
    state = %(state)s::jsonb, heartbeat_at = now()
FROM {DURABILITY}
WHERE id = %(id)s AND lease = %(lease)s AND jsonb_array_length(execution_log) = %(length)s
RETURNING cancel_requested
"""  # noqa: S608 (fixed SQL fragments)
REPLACE_LAST_SQL = f"""
UPDATE flow_executions SET execution_log = jsonb_set(execution_log, '{{-1}}', %(entry)s::jsonb),
    state = %(state)s::jsonb, heartbeat_at = now()
FROM {DURABILITY}
WHERE id = %(id)s AND lease = %(lease)s AND jsonb_array_length(execution_log) = %(length)s
RETURNING cancel_requested
"""  # noqa: S608 (fixed SQL fragments)
WRITTEN_SQL = """
SELECT cancel_requested FROM flow_executions
WHERE id = %s AND lease = %s AND jsonb_array_length(execution_log) = %s AND execution_log -> -1 = %s::jsonb
"""
# A cancel that arrives after the last step was saved must not be lost when the run parks:
# a run about to wait is cancelled instead (SET expressions read the row as it was).
_FINAL_STATUS = "CASE WHEN cancel_requested AND %(parks)s::boolean THEN 'cancelled' ELSE %(status)s END"
_FINAL_ERROR = "CASE WHEN cancel_requested AND %(parks)s::boolean THEN 'Cancelled on request.' ELSE %(error)s END"
FINISH_SQL = f"""
UPDATE flow_executions SET
    status = {_FINAL_STATUS},
    error = {_FINAL_ERROR},
    completed_at = CASE WHEN cancel_requested AND %(parks)s::boolean THEN now() ELSE %(completed_at)s::timestamptz END,
    resume_at = CASE WHEN cancel_requested THEN NULL ELSE %(resume_at)s::timestamptz END,
    enqueued_at = CASE WHEN cancel_requested THEN NULL ELSE %(resume_at)s::timestamptz END,
    state = %(state)s::jsonb, run_seconds = %(run_seconds)s, lease = NULL, cancel_requested = false,
    execution_log = CASE
        WHEN %(log_mode)s = 'append' THEN execution_log || jsonb_build_array(%(entry)s::jsonb)
        WHEN %(log_mode)s = 'replace' THEN jsonb_set(execution_log, '{{-1}}', %(entry)s::jsonb)
        -- Ended without a last entry of its own (cancelled at a step boundary, an internal
        -- error): a step it left open is closed with it.
        WHEN {_FINAL_STATUS} IN ('failed', 'cancelled') THEN {close_open_step_sql(_FINAL_STATUS, _FINAL_ERROR)}
        ELSE execution_log END
FROM {DURABILITY}
WHERE id = %(id)s AND lease = %(lease)s
RETURNING status
"""  # noqa: S608 (fixed SQL fragments)


def _dumps(value: object) -> str:
    """JSON for a jsonb column, which cannot hold U+0000 (an HTTP response body may).

    Without this the write fails, the run stays `running`, and every recovery fails again.
    """
    text = json.dumps(value)
    if "\\u0000" in text:
        text = json.dumps(_without_nul(value))
    return text


def _without_nul(value: object) -> object:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_without_nul(child) for child in value]
    return value


@dataclass
class DatabaseJournal:
    execution_id: int
    lease: uuid.UUID
    log_length: int = 0
    # The step that ended the run: written by finish() in the same statement as the final
    # status, rather than in a statement of its own right before it.
    final_entry: tuple[dict, bool, bool] | None = None  # entry, replace_last, durable

    def record(self, entry: dict, state: dict, *, replace_last: bool = False, durable: bool = False) -> Signal:
        if not state["queue"] and not state.get("waiting"):
            self.final_entry = (entry, replace_last, durable)
            return Signal.CONTINUE
        sql = REPLACE_LAST_SQL if replace_last else APPEND_SQL
        entry_json = _dumps(entry)
        params = {
            "entry": entry_json,
            "state": _dumps(state),
            "commit": "on" if durable else "off",
            "id": self.execution_id,
            "lease": self.lease,
            "length": self.log_length,
        }
        try:
            row = _fetch_one(sql, params)
        except (InterfaceError, OperationalError):
            # The connection dropped (database restart, network). Reconnect and try once
            # more: the length condition makes a second append impossible, and if the first
            # attempt did commit, the entry is already there under our lease.
            logger.warning("execution %s: database connection lost while saving a step; retrying", self.execution_id)
            connection.close()
            row = _fetch_one(sql, params)
            if row is None:
                written_length = self.log_length if replace_last else self.log_length + 1
                row = _fetch_one(WRITTEN_SQL, [self.execution_id, self.lease, written_length, entry_json])
        if row is None:
            return Signal.LOST
        if not replace_last:
            self.log_length += 1
        return Signal.CANCEL if row[0] else Signal.CONTINUE


def _fetch_one(sql: str, params: list | dict) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


class Heartbeat:
    """One daemon thread per worker process that refreshes the current run's heartbeat.

    It has its own database connection (Django's is bound to the task's thread) and stops
    beating for a run that has exceeded its run-time limit, so a step stuck for good still
    ends up looking dead to the sweeper.
    """

    _instance: Heartbeat | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: tuple[int, uuid.UUID, float] | None = None
        self._thread = threading.Thread(target=self._loop, name="inflow-heartbeat", daemon=True)
        self._thread.start()

    @classmethod
    def get(cls) -> Heartbeat:
        with cls._instance_lock:
            if cls._instance is None or not cls._instance._thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def track(self, execution_id: int, lease: uuid.UUID) -> None:
        with self._lock:
            self._target = (execution_id, lease, time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._target = None

    def _loop(self) -> None:
        conn = None
        limit = settings.EXECUTION_MAX_RUN_SECONDS + settings.EXECUTION_HEARTBEAT_TIMEOUT
        while True:
            time.sleep(settings.EXECUTION_HEARTBEAT_SECONDS)
            with self._lock:
                target = self._target
            if target is None or time.monotonic() - target[2] > limit:
                continue
            try:
                if conn is None or conn.closed:
                    params = connection.get_connection_params()
                    params.pop("cursor_factory", None)
                    params.pop("context", None)
                    conn = psycopg.connect(**params, autocommit=True)
                conn.execute(
                    "UPDATE flow_executions SET heartbeat_at = now() WHERE id = %s AND lease = %s",
                    [target[0], target[1]],
                )
            except psycopg.Error:
                logger.warning("heartbeat for execution %s failed; will retry", target[0], exc_info=True)
                conn = None


_disabled_cache: tuple[float, frozenset[str]] = (0.0, frozenset())
DISABLED_TYPES_TTL = 10.0


def disabled_node_types() -> frozenset[str]:
    """Types staff switched off, cached per process for a few seconds (one query, not one per run)."""
    global _disabled_cache
    fetched_at, types = _disabled_cache
    if time.monotonic() - fetched_at > DISABLED_TYPES_TTL:
        types = frozenset(NodeType.objects.filter(enabled=False).values_list("type", flat=True))
        _disabled_cache = (time.monotonic(), types)
    return types


def _as_json(value):
    return json.loads(value) if isinstance(value, str) else value


def run(execution_id: int) -> Outcome | None:
    """Claim and run an execution. None when it was not runnable (finished, owned, early)."""
    claimed = claim(execution_id)
    if claimed is None:
        return None
    lease = claimed["lease"]
    state = _as_json(claimed["state"])
    heartbeat = Heartbeat.get()
    heartbeat.track(execution_id, lease)
    journal = DatabaseJournal(execution_id, lease, log_length=claimed["log_length"])
    try:
        outcome = _run_engine(execution_id, claimed, state, journal)
    except (InterfaceError, OperationalError):
        raise  # the database is away: the sweeper resumes the run once it is back
    except Exception as exc:
        # A bug must end the run. Left `running`, it would be recovered and fail again forever.
        logger.exception("execution %s: unexpected error in the engine; the run is marked failed", execution_id)
        outcome = Outcome("failed", f"Internal error: {type(exc).__name__}: {exc}")
    finally:
        heartbeat.clear()
    if outcome.status != "lost":
        _finish(execution_id, lease, outcome, state, state.get("run_seconds", 0.0), journal.final_entry)
    else:
        logger.warning("execution %s was taken over by another worker; stopping", execution_id)
    return outcome


def _run_engine(execution_id: int, claimed: dict, state: dict, journal: DatabaseJournal) -> Outcome:
    """Run the engine on `state`, which it updates in place (a fresh run starts it here)."""
    flow_data = _as_json(claimed["flow_data"])
    engine = Engine(
        flow_data,
        limits=Limits(
            max_steps=settings.EXECUTION_MAX_STEPS,
            max_run_seconds=settings.EXECUTION_MAX_RUN_SECONDS,
        ),
        disabled_types=disabled_node_types(),
        identity={"execution_id": execution_id, "flow_id": claimed["flow_id"], "user_id": claimed["user_id"]},
    )
    if not state:
        trigger = trigger_node(flow_data)
        if trigger is None:
            return Outcome("failed", "The flow has no trigger node.")
        state.update(engine.initial_state(trigger["id"], _as_json(claimed["trigger_data"])))
    return engine.run(state, journal)


def _finish(
    execution_id: int,
    lease: uuid.UUID,
    outcome: Outcome,
    state: dict,
    run_seconds: float,
    final_entry: tuple[dict, bool, bool] | None = None,
) -> None:
    waiting = outcome.status == "waiting"
    entry, replace_last, durable = final_entry or (None, False, False)
    params = {
        "commit": "on" if durable else "off",
        "status": outcome.status,
        "parks": waiting,
        "error": outcome.error[:5000].replace("\x00", "\ufffd"),
        "completed_at": None if waiting else timezone.now(),
        # A parked run counts as enqueued for its resume time (see schedule_resume).
        "resume_at": outcome.resume_at if waiting else None,
        "state": _dumps(state),
        "run_seconds": run_seconds,
        "log_mode": "none" if entry is None else ("replace" if replace_last else "append"),
        "entry": None if entry is None else _dumps(entry),
        "id": execution_id,
        "lease": lease,
    }
    try:
        row = _fetch_one(FINISH_SQL, params)
    except (InterfaceError, OperationalError):
        # As in record(): the statement is conditional on our lease, so a retry after a
        # first attempt that did commit simply matches nothing.
        logger.warning("execution %s: database connection lost while finishing; retrying", execution_id)
        connection.close()
        row = _fetch_one(FINISH_SQL, params)
    # No row: a retried statement whose first attempt committed, or a lost lease. A second
    # resume message is harmless (the claim), a missing one would delay the run.
    if waiting and (row is None or row[0] == "waiting"):
        from executions.tasks import schedule_resume

        schedule_resume(execution_id, outcome.resume_at)
