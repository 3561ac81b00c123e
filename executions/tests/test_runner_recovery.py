"""The runner never leaves a run `running` for the sweeper to retry forever, and keeps cancels.

In-process (runner.run in the test), on the real database: what a worker does, minus the
broker. The worker-process versions of the happy paths are in test_worker_execution.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from core.testing import FakeHTTPServer, Reply
from executions import runner
from executions.engine import Engine, Outcome
from executions.models import FlowExecution, claim
from executions.tasks import MAX_RECOVERIES, sweep_executions
from flows.models import Flow

pytestmark = pytest.mark.django_db


def make_run(user, nodes: list[dict], edges: list[tuple]) -> FlowExecution:
    flow_data = {
        "nodes": [{"id": "t", "type": "trigger.manual", "config": {}}, *nodes],
        "edges": [{"source": source, "target": target} for source, target in edges],
    }
    flow = Flow.objects.create(user=user, name="f", flow_data=flow_data, status=Flow.Status.ACTIVE)
    assert flow.graph_errors(complete=True) == []
    return FlowExecution.objects.create(flow=flow, user=user)


def make_due(execution: FlowExecution) -> None:
    """Skip the rest of a delay: the run is resumed now."""
    execution.refresh_from_db()
    past = timezone.now() - timedelta(seconds=1)
    execution.state["waiting"]["until"] = past.isoformat()
    FlowExecution.objects.filter(pk=execution.pk).update(state=execution.state, resume_at=past)


def test_a_node_removed_while_the_run_waits_fails_the_run_clearly(user):
    execution = make_run(
        user,
        [
            {"id": "wait", "type": "logic.delay", "config": {"seconds": 60}},
            {"id": "b", "type": "logic.set", "config": {"values": {"b": 2}}},
        ],
        [("t", "wait"), ("t", "b")],
    )
    assert runner.run(execution.pk).status == "waiting"  # "b" is queued behind the delay
    flow = execution.flow
    flow.flow_data = {"nodes": flow.flow_data["nodes"][:2], "edges": flow.flow_data["edges"][:1]}
    flow.save()
    make_due(execution)

    outcome = runner.run(execution.pk)

    execution.refresh_from_db()
    assert outcome.status == execution.status == "failed"
    assert execution.error == 'Node "b" is no longer in the flow: it was edited during the run.'
    assert execution.lease is None


@pytest.mark.parametrize(
    ("reply", "status"),
    [(Reply(200, {"text": "a\u0000b"}), "succeeded"), (Reply(404, b"not\x00found"), "failed")],
)
def test_a_nul_character_in_a_response_is_stored_not_fatal(user, settings, reply, status):
    """PostgreSQL refuses U+0000 in jsonb and text: the run used to stay `running` for good."""
    settings.HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS = True
    with FakeHTTPServer(lambda request: reply) as server:
        execution = make_run(
            user,
            [
                {"id": "h", "type": "http.request", "config": {"url": f"{server.url}/x"}},
                {"id": "s", "type": "logic.set", "config": {"values": {"v": "{{ nodes.h.body }}"}}},
            ],
            [("t", "h"), ("h", "s")],
        )
        runner.run(execution.pk)

    execution.refresh_from_db()
    assert execution.status == status, execution.error
    assert execution.lease is None
    if status == "succeeded":
        assert execution.execution_log[0]["output"]["body"] == {"text": "a\ufffdb"}
    else:
        assert "not\ufffdfound" in execution.error


def test_an_unexpected_error_outside_the_steps_fails_the_run(user, monkeypatch):
    execution = make_run(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])

    def broken(self, state, journal):
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(Engine, "run", broken)

    outcome = runner.run(execution.pk)

    execution.refresh_from_db()
    assert outcome.status == execution.status == "failed"
    assert execution.error == "Internal error: RuntimeError: a bug in the engine"
    assert execution.completed_at is not None
    assert execution.lease is None


def test_a_cancel_that_arrives_as_the_run_parks_is_kept(user):
    execution = make_run(user, [{"id": "wait", "type": "logic.delay", "config": {"seconds": 60}}], [("t", "wait")])
    lease = claim(execution.pk)["lease"]
    assert execution.request_cancel()  # running: flagged for the next step boundary
    assert (execution.status, execution.cancel_requested) == ("running", True)

    # The worker saved its last step before the flag was set, and now parks the run.
    resume_at = timezone.now() + timedelta(minutes=1)
    runner._finish(execution.pk, lease, Outcome("waiting", resume_at=resume_at), {"queue": ["wait"]}, 0.0)

    execution.refresh_from_db()
    assert execution.status == "cancelled"
    assert execution.resume_at is None
    assert execution.completed_at is not None


def test_cancel_in_every_state(user):
    execution = make_run(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])
    for status, cancelled, expected in [
        ("pending", True, "cancelled"),
        ("waiting", True, "cancelled"),
        ("running", True, "running"),
        ("succeeded", False, "succeeded"),
        ("cancelled", False, "cancelled"),
    ]:
        FlowExecution.objects.filter(pk=execution.pk).update(
            status=status, cancel_requested=False, resume_at=timezone.now()
        )
        assert execution.request_cancel() is cancelled, status
        assert execution.status == expected
        assert execution.cancel_requested is (status == "running")
        if status in ("pending", "waiting"):
            assert execution.resume_at is None
            assert execution.error == "Cancelled on request."


def test_a_run_whose_worker_keeps_dying_is_failed_not_resumed_forever(user, settings):
    settings.EXECUTION_HEARTBEAT_TIMEOUT = 30
    execution = make_run(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])
    again = FlowExecution.objects.create(flow=execution.flow, user=user)
    dead = {"status": "running", "heartbeat_at": timezone.now() - timedelta(minutes=5)}
    FlowExecution.objects.filter(pk=again.pk).update(**dead, recoveries=MAX_RECOVERIES - 1)
    FlowExecution.objects.filter(pk=execution.pk).update(**dead, recoveries=MAX_RECOVERIES)

    assert sweep_executions()["recovered"] == 2

    execution.refresh_from_db()
    again.refresh_from_db()
    assert execution.status == "failed"
    assert execution.error == f"Stopped: its worker died {MAX_RECOVERIES + 1} times while running it."
    assert execution.completed_at is not None
    assert again.status == "pending"


def intent(node_id: str = "h") -> dict:
    """The entry a side-effecting step writes before its call."""
    started = (timezone.now() - timedelta(minutes=6)).isoformat().replace("+00:00", "Z")
    return {
        "node_id": node_id,
        "type": "http.request",
        "status": "running",
        "attempt": 1,
        "started_at": started,
        "finished_at": None,
        "duration_ms": None,
        "output": None,
        "error": None,
    }


def assert_closed(entry: dict, status: str, error: str) -> None:
    assert entry["status"] == status
    assert entry["error"] == error
    started, finished = (
        datetime.fromisoformat(entry[key].replace("Z", "+00:00")) for key in ("started_at", "finished_at")
    )
    assert started < finished <= timezone.now()
    assert entry["decision"].startswith("not repeated: the run ended during the call")


def test_a_run_the_sweeper_ends_leaves_no_step_running(user, settings):
    settings.EXECUTION_HEARTBEAT_TIMEOUT = 30
    failed, cancelled, resumed = (
        make_run(user, [{"id": "h", "type": "http.request", "config": {"url": "https://example.com/"}}], [("t", "h")])
        for _ in range(3)
    )
    dead = {"status": "running", "heartbeat_at": timezone.now() - timedelta(minutes=5), "execution_log": [intent()]}
    FlowExecution.objects.filter(pk=failed.pk).update(**dead, recoveries=MAX_RECOVERIES)
    FlowExecution.objects.filter(pk=cancelled.pk).update(**dead, cancel_requested=True)
    FlowExecution.objects.filter(pk=resumed.pk).update(**dead)

    assert sweep_executions()["recovered"] == 3

    for execution in (failed, cancelled, resumed):
        execution.refresh_from_db()
    assert failed.status == "failed"
    assert_closed(failed.execution_log[-1], "failed", failed.error)
    assert cancelled.status == "cancelled"
    assert_closed(cancelled.execution_log[-1], "cancelled", "Cancelled on request.")
    # A run that is resumed keeps its intent: the engine decides on it (see test_engine.py).
    assert resumed.status == "pending"
    assert resumed.execution_log == [intent() | {"started_at": resumed.execution_log[0]["started_at"]}]


def test_cancelling_a_run_closes_the_step_it_left_open(user):
    recovered = make_run(
        user, [{"id": "h", "type": "http.request", "config": {"url": "https://example.com/"}}], [("t", "h")]
    )
    FlowExecution.objects.filter(pk=recovered.pk).update(status="pending", execution_log=[intent()])
    waiting = make_run(user, [{"id": "wait", "type": "logic.delay", "config": {"seconds": 60}}], [("t", "wait")])
    assert runner.run(waiting.pk).status == "waiting"

    assert recovered.request_cancel()
    assert waiting.request_cancel()

    recovered.refresh_from_db()
    waiting.refresh_from_db()
    assert_closed(recovered.execution_log[-1], "cancelled", "Cancelled on request.")
    delay = waiting.execution_log[-1]
    assert (delay["node_id"], delay["status"], delay["error"]) == ("wait", "cancelled", "Cancelled on request.")
    assert delay["finished_at"] is not None
    assert "decision" not in delay  # nothing was called


def test_an_internal_error_after_an_intent_closes_that_step(user, monkeypatch):
    execution = make_run(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])

    def broken(self, state, journal):
        journal.record(intent("s"), state)
        raise RuntimeError("a bug in the engine")

    monkeypatch.setattr(Engine, "run", broken)

    runner.run(execution.pk)

    execution.refresh_from_db()
    assert execution.status == "failed"
    assert_closed(execution.execution_log[-1], "failed", "Internal error: RuntimeError: a bug in the engine")


@pytest.mark.django_db(transaction=True)  # autocommit, as in a worker
def test_writes_that_skip_the_flush_leave_the_session_durable(user):
    """set_config(..., true) lasts one transaction: the worker's connection, which also
    serves other tasks, keeps synchronous_commit on."""
    from django.db import connection

    execution = make_run(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])
    assert runner.run(execution.pk).status == "succeeded"
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
