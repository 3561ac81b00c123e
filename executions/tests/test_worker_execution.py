"""Executions through real Celery worker processes, real Redis and the real database."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis

from conftest import TEST_REDIS_URL
from core.testing import FakeHTTPServer, Reply, wait_for
from executions.models import FlowExecution
from executions.tasks import sweep_executions
from flows.models import Flow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def make_flow(user, nodes: list[dict], edges: list[tuple], status: str = Flow.Status.ACTIVE) -> Flow:
    flow_data = {
        "nodes": [{"id": "t", "type": "trigger.manual", "config": {}}, *nodes],
        "edges": [{"source": e[0], "target": e[1], **({"port": e[2]} if len(e) > 2 else {})} for e in edges],
    }
    flow = Flow(user=user, name="test flow", flow_data=flow_data, status=status)
    assert flow.graph_errors(complete=True) == []
    flow.save()
    return flow


def run(api, flow: Flow, trigger_data: dict | None = None) -> int:
    response = api.post(f"/api/v1/flows/{flow.pk}/run/", {"trigger_data": trigger_data or {}}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "pending"
    return response.json()["id"]


def status_of(execution_id: int) -> str:
    return FlowExecution.objects.values_list("status", flat=True).get(pk=execution_id)


def wait_status(execution_id: int, *statuses: str, timeout: float = 30) -> FlowExecution:
    wait_for(lambda: status_of(execution_id) in statuses, timeout, message=f"execution {execution_id} in {statuses}")
    return FlowExecution.objects.get(pk=execution_id)


def succeeded_nodes(execution: FlowExecution) -> Counter:
    return Counter(e["node_id"] for e in execution.execution_log if e["status"] == "succeeded")


def test_a_condition_flow_runs_to_succeeded_and_skips_the_other_branch(worker, api, user):
    flow = make_flow(
        user,
        [
            {
                "id": "c",
                "type": "logic.condition",
                "config": {"left": "{{ trigger.text }}", "op": "contains", "right": "vip"},
            },
            {"id": "yes", "type": "logic.set", "config": {"values": {"tier": "vip"}}},
            {"id": "no", "type": "logic.set", "config": {"values": {"tier": "regular"}}},
        ],
        [("t", "c"), ("c", "yes", "true"), ("c", "no", "false")],
    )
    execution_id = run(api, flow, {"text": "I'm a VIP"})

    execution = wait_status(execution_id, "succeeded", "failed")

    assert execution.status == "succeeded", execution.error
    assert [(e["node_id"], e["status"]) for e in execution.execution_log] == [("c", "succeeded"), ("yes", "succeeded")]
    assert execution.completed_at is not None
    detail = api.get(f"/api/v1/executions/{execution_id}/").json()
    assert detail["execution_log"][1]["output"] == {"tier": "vip"}


def test_a_short_delay_shows_waiting_and_resumes(worker, api, user):
    flow = make_flow(
        user,
        [
            {"id": "before", "type": "logic.set", "config": {"values": {"a": 1}}},
            {"id": "wait", "type": "logic.delay", "config": {"seconds": 2}},
            {"id": "after", "type": "logic.set", "config": {"values": {"b": 2}}},
        ],
        [("t", "before"), ("before", "wait"), ("wait", "after")],
    )
    execution_id = run(api, flow)

    waiting = wait_status(execution_id, "waiting", timeout=15)
    assert waiting.resume_at is not None
    assert [e["status"] for e in waiting.execution_log] == ["succeeded", "waiting"]

    done = wait_status(execution_id, "succeeded", "failed", timeout=30)
    assert done.status == "succeeded"
    assert succeeded_nodes(done) == Counter({"before": 1, "wait": 1, "after": 1})
    assert done.execution_log[1]["duration_ms"] >= 1900


def test_a_flow_edited_while_a_run_waits_does_not_change_that_run(worker, api, user):
    nodes = [
        {"id": "wait", "type": "logic.delay", "config": {"seconds": 3}},
        {"id": "after", "type": "logic.set", "config": {"values": {"b": "old"}}},
        {"id": "last", "type": "logic.set", "config": {"values": {"c": 3}}},
    ]
    flow = make_flow(user, nodes, [("t", "wait"), ("wait", "after"), ("after", "last")])
    execution_id = run(api, flow)
    wait_status(execution_id, "waiting", timeout=15)

    # While it waits: the node after the delay means something else, the last one is gone.
    edited = {
        "nodes": [flow.flow_data["nodes"][0], nodes[0], {**nodes[1], "config": {"values": {"b": "new"}}}],
        "edges": flow.flow_data["edges"][:2],
    }
    assert api.patch(f"/api/v1/flows/{flow.pk}/", {"flow_data": edited}, format="json").status_code == 200

    done = wait_status(execution_id, "succeeded", "failed", timeout=30)
    assert done.status == "succeeded", done.error
    assert succeeded_nodes(done) == Counter({"wait": 1, "after": 1, "last": 1})
    assert done.execution_log[1]["output"] == {"b": "old"}
    # The next run follows the edit.
    again = wait_status(run(api, flow), "succeeded", "failed", timeout=30)
    assert succeeded_nodes(again) == Counter({"wait": 1, "after": 1})
    assert again.execution_log[1]["output"] == {"b": "new"}
    assert again.flow_version_id != done.flow_version_id


def test_transient_http_failures_are_retried_with_backoff(worker, api, user):
    answers = iter([Reply(503), Reply(503), Reply(200, {"ok": True})])
    with FakeHTTPServer(lambda request: next(answers)) as server:
        flow = make_flow(
            user,
            [
                {
                    "id": "call",
                    "type": "http.request",
                    "config": {"url": f"{server.url}/status", "method": "GET"},
                    "retry": {"max_attempts": 3, "backoff_seconds": 0.2},
                }
            ],
            [("t", "call")],
        )
        execution_id = run(api, flow)
        execution = wait_status(execution_id, "succeeded", "failed", timeout=30)

    assert execution.status == "succeeded", execution.error
    assert [(e["attempt"], e["status"]) for e in execution.execution_log] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert "HTTP 503" in execution.execution_log[0]["error"]
    assert execution.execution_log[-1]["output"]["body"] == {"ok": True}
    assert len(server.received("GET", "/status")) == 3


def test_kill_9_of_the_worker_mid_execution_still_succeeds_without_repeating_steps(start_worker, api, user, settings):
    settings.EXECUTION_HEARTBEAT_TIMEOUT = 3
    fast_liveness = {"EXECUTION_HEARTBEAT_TIMEOUT": "3", "EXECUTION_HEARTBEAT_SECONDS": "1"}
    with FakeHTTPServer(lambda request: Reply(200, {"slow": True}, delay=3)) as server:
        flow = make_flow(
            user,
            [
                {"id": "first", "type": "logic.set", "config": {"values": {"n": 1}}},
                {"id": "slow", "type": "http.request", "config": {"url": f"{server.url}/slow"}},
                {"id": "last", "type": "logic.set", "config": {"values": {"n": 2}}},
            ],
            [("t", "first"), ("first", "slow"), ("slow", "last")],
        )
        doomed = start_worker(**fast_liveness)
        execution_id = run(api, flow)
        wait_for(lambda: server.received("GET", "/slow"), 20, message="the slow step to start")
        doomed.kill()
        killed_at = time.monotonic()
        assert status_of(execution_id) == "running"

        start_worker(**fast_liveness)
        wait_for(lambda: sweep_executions()["recovered"] or status_of(execution_id) != "running", 30, interval=0.5)
        execution = wait_status(execution_id, "succeeded", "failed", timeout=30)
        recovery = time.monotonic() - killed_at

    assert execution.status == "succeeded", execution.error
    assert execution.recoveries == 1
    assert succeeded_nodes(execution) == Counter({"first": 1, "slow": 1, "last": 1})
    print(f"\nrecovered from kill -9 in {recovery:.1f} s")


def test_a_flushed_broker_loses_no_pending_execution(start_worker, api, user, settings):
    settings.EXECUTION_PENDING_REQUEUE_SECONDS = 1
    flow = make_flow(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])
    ids = [run(api, flow, {"n": n}) for n in range(5)]  # no worker runs: they stay queued
    broker = redis.Redis.from_url(TEST_REDIS_URL)
    assert broker.llen("inflow") >= 5
    broker.flushdb()
    assert broker.llen("inflow") == 0

    start_worker()
    time.sleep(1.1)
    sweep_executions()
    for execution_id in ids:
        assert wait_status(execution_id, "succeeded", "failed").status == "succeeded"

    # After the flush, brand new messages still reach the worker (no lost exchange bindings).
    assert wait_status(run(api, flow), "succeeded", "failed").status == "succeeded"


def test_cancel_a_pending_execution(start_worker, api, user):
    flow = make_flow(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])
    execution_id = run(api, flow)  # no worker is running yet

    response = api.post(f"/api/v1/executions/{execution_id}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    start_worker()  # the queued message is consumed and ignored
    time.sleep(1.5)
    execution = FlowExecution.objects.get(pk=execution_id)
    assert execution.status == "cancelled"
    assert execution.execution_log == []


def test_cancel_a_waiting_execution(worker, api, user):
    flow = make_flow(
        user,
        [
            {"id": "wait", "type": "logic.delay", "config": {"seconds": 60}},
            {"id": "after", "type": "logic.set", "config": {"values": {"b": 2}}},
        ],
        [("t", "wait"), ("wait", "after")],
    )
    execution_id = run(api, flow)
    wait_status(execution_id, "waiting")

    assert api.post(f"/api/v1/executions/{execution_id}/cancel/").json()["status"] == "cancelled"
    execution = FlowExecution.objects.get(pk=execution_id)
    assert execution.resume_at is None
    assert "after" not in succeeded_nodes(execution)


def test_cancel_a_running_execution_stops_at_the_next_step(worker, api, user):
    with FakeHTTPServer(lambda request: Reply(200, {}, delay=2)) as server:
        flow = make_flow(
            user,
            [
                {"id": "slow", "type": "http.request", "config": {"url": f"{server.url}/slow"}},
                {"id": "after", "type": "logic.set", "config": {"values": {"b": 2}}},
            ],
            [("t", "slow"), ("slow", "after")],
        )
        execution_id = run(api, flow)
        wait_for(lambda: server.received("GET", "/slow"), 20, message="the slow step to start")

        response = api.post(f"/api/v1/executions/{execution_id}/cancel/")
        assert response.status_code == 200
        assert response.json()["status"] == "running"
        assert response.json()["cancel_requested"] is True

        execution = wait_status(execution_id, "cancelled", "succeeded", "failed", timeout=20)

    assert execution.status == "cancelled"
    assert [e["node_id"] for e in execution.execution_log] == ["slow"]


def test_cancel_a_finished_execution_is_a_conflict(worker, api, user):
    flow = make_flow(user, [{"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}}], [("t", "s")])
    execution_id = run(api, flow)
    wait_status(execution_id, "succeeded")
    response = api.post(f"/api/v1/executions/{execution_id}/cancel/")
    assert response.status_code == 409
    assert "already succeeded" in response.json()["detail"]
