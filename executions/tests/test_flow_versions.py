"""A run executes the graph it started with (its flow version), whatever edits come later.

In-process on the real database; the same with a real worker is in test_worker_execution.py.
"""

from __future__ import annotations

import copy
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from executions import runner, services
from executions.models import FlowExecution
from executions.services import start_execution
from executions.tasks import purge_old_executions, purge_unused_versions
from executions.tests.test_runner_recovery import make_due
from flows.models import Flow, FlowVersion, graph_digest

pytestmark = pytest.mark.django_db

GRAPH = {
    "nodes": [
        {"id": "t", "type": "trigger.manual", "config": {}},
        {"id": "wait", "type": "logic.delay", "config": {"seconds": 60}},
        {"id": "after", "type": "logic.set", "config": {"values": {"b": "old"}}},
        {"id": "last", "type": "logic.set", "config": {"values": {"c": 3}}},
    ],
    "edges": [
        {"source": "t", "target": "wait"},
        {"source": "wait", "target": "after"},
        {"source": "after", "target": "last"},
    ],
}


def edited(graph: dict) -> dict:
    """The node after the delay means something else now, and the last node is gone."""
    graph = copy.deepcopy(graph)
    graph["nodes"][2]["config"] = {"values": {"b": "new"}}
    graph["nodes"] = graph["nodes"][:3]
    graph["edges"] = graph["edges"][:2]
    return graph


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """Committed runs are not sent to a worker here; the version cache starts empty."""
    monkeypatch.setattr("executions.tasks.enqueue", lambda execution_id: None)
    services.version_cache.clear()
    yield
    services.version_cache.clear()


@pytest.fixture
def flow(user) -> Flow:
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH, status=Flow.Status.ACTIVE)
    assert flow.graph_errors(complete=True) == []
    return flow


def start(flow: Flow) -> FlowExecution:
    execution, created = start_execution(flow=flow, trigger_type="trigger.manual", trigger_data={})
    assert created
    return execution


def test_a_run_edited_while_it_waits_finishes_on_the_graph_it_started_with(flow):
    execution = start(flow)
    assert runner.run(execution.pk).status == "waiting"
    flow.flow_data = edited(flow.flow_data)
    flow.save()
    make_due(execution)

    assert runner.run(execution.pk).status == "succeeded"

    execution.refresh_from_db()
    assert [(e["node_id"], e["status"]) for e in execution.execution_log] == [
        ("wait", "succeeded"),
        ("after", "succeeded"),
        ("last", "succeeded"),
    ]
    assert execution.execution_log[1]["output"] == {"b": "old"}
    # A run started after the edit runs the new graph.
    later = start(flow)
    assert runner.run(later.pk).status == "waiting"
    make_due(later)
    runner.run(later.pk)
    later.refresh_from_db()
    assert [e["node_id"] for e in later.execution_log] == ["wait", "after"]
    assert later.execution_log[1]["output"] == {"b": "new"}


def test_the_same_graph_shares_one_version_and_an_edit_makes_a_second(flow):
    first, second = start(flow), start(flow)
    assert first.flow_version_id == second.flow_version_id
    version = FlowVersion.objects.get()
    assert version.flow_data == GRAPH
    assert version.digest == graph_digest(GRAPH)

    # Key order does not make a new version: the digest is of the canonical JSON.
    flow.flow_data = {"edges": GRAPH["edges"], "nodes": GRAPH["nodes"]}
    assert start(flow).flow_version_id == version.pk

    flow.flow_data = edited(GRAPH)
    flow.save()
    third = start(flow)
    assert third.flow_version_id != version.pk
    assert FlowVersion.objects.count() == 2
    assert FlowVersion.objects.get(pk=third.flow_version_id).flow_data == edited(GRAPH)


def test_starting_a_run_costs_one_query_more_at_most_and_none_once_cached(flow, django_capture_on_commit_callbacks):
    other = Flow.objects.create(user=flow.user, name="g", flow_data=GRAPH)

    def queries_to_start(which: Flow) -> int:
        with CaptureQueriesContext(connection) as context, django_capture_on_commit_callbacks(execute=True):
            start(which)
        return len(context.captured_queries)

    new_graph = queries_to_start(flow)  # INSERT ... ON CONFLICT makes the version
    services.version_cache.clear()
    known_graph = queries_to_start(flow)  # the INSERT finds it, a SELECT reads its id
    cached = queries_to_start(flow)  # the process remembers it from the committed run
    assert known_graph == new_graph + 1
    assert cached == new_graph - 1
    assert queries_to_start(other) == new_graph  # another flow, its own version
    assert FlowVersion.objects.count() == 2


def test_a_version_is_remembered_only_once_its_run_is_committed(flow):
    start(flow)  # the test's transaction never commits: nothing is cached
    assert services.version_cache.get((flow.pk, graph_digest(GRAPH))) is None


def test_a_run_from_before_versions_runs_the_flows_current_graph(flow):
    legacy = FlowExecution.objects.create(flow=flow, user=flow.user)
    assert runner.run(legacy.pk).status == "waiting"
    flow.flow_data = edited(flow.flow_data)
    flow.save()
    make_due(legacy)

    runner.run(legacy.pk)

    legacy.refresh_from_db()
    assert legacy.status == "succeeded"
    assert legacy.execution_log[1]["output"] == {"b": "new"}


def test_retention_deletes_only_old_graphs_no_run_uses(flow, settings):
    settings.EXECUTION_RETENTION_DAYS = 30
    old_run = start(flow)
    old_version = old_run.flow_version_id
    flow.flow_data = edited(GRAPH)
    flow.save()
    kept_run = start(flow)
    current = kept_run.flow_version_id
    FlowExecution.objects.filter(pk=kept_run.pk).delete()  # the current graph, now unused
    # A third graph, since edited away but still used by a recent run.
    flow.flow_data = {**GRAPH, "nodes": [*GRAPH["nodes"][:3], {**GRAPH["nodes"][3], "config": {"values": {}}}]}
    flow.save()
    used = start(flow).flow_version_id
    flow.flow_data = edited(GRAPH)
    flow.save()
    long_ago = timezone.now() - timedelta(days=31)
    FlowExecution.objects.filter(pk=old_run.pk).update(status="succeeded", completed_at=long_ago)

    assert purge_old_executions() == 1

    assert set(FlowVersion.objects.values_list("pk", flat=True)) == {current, used}
    assert old_version not in FlowVersion.objects.values_list("pk", flat=True)
    assert purge_unused_versions() == 0  # nothing else to delete


def test_deleting_a_flow_deletes_its_versions(flow):
    start(flow)
    flow.delete()
    assert not FlowVersion.objects.exists()
    assert not FlowExecution.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_retention_skips_a_version_a_run_being_created_holds(user):
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    old = FlowVersion.objects.id_for(flow.pk, GRAPH)  # a version no run uses...
    flow.flow_data = edited(GRAPH)
    flow.save()  # ...and no longer the current graph
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    with psycopg.connect(**params) as other:  # another process starting a run of that graph
        with other.cursor() as cursor:
            cursor.execute("SELECT id FROM flow_versions WHERE id = %s FOR KEY SHARE", [old])
        assert purge_unused_versions() == 0
        other.rollback()
    assert purge_unused_versions() == 1
    assert not FlowVersion.objects.filter(pk=old).exists()


def test_the_execution_page_draws_the_graph_the_run_used(flow, staff, django_assert_max_num_queries):
    execution = start(flow)
    runner.run(execution.pk)
    flow.flow_data = edited(GRAPH)
    flow.save()
    legacy = FlowExecution.objects.create(flow=flow, user=flow.user)

    def page(run: FlowExecution) -> str:
        return staff.get(f"/admin/executions/flowexecution/{run.pk}/change/").content.decode()

    page(legacy)  # warm the session and content types
    with django_assert_max_num_queries(3) as versioned_queries:  # the user, the run (with its graphs), its user
        versioned = page(execution)
    assert versioned.count('class="inflow-node"') == 4
    assert 'data-node-id="last"' in versioned
    assert 'data-node-id="wait" data-status="waiting"' in versioned
    assert "the flow has been edited since" in versioned
    with CaptureQueriesContext(connection) as legacy_queries:
        current = page(legacy)
    assert current.count('class="inflow-node"') == 3
    assert "started before flow versions" in current
    assert len(legacy_queries.captured_queries) == len(versioned_queries.captured_queries)


def test_the_version_cache_keeps_recent_graphs_for_a_while(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
    cache = services._VersionCache(size=2, seconds=60)
    cache.put((1, "a"), 10)
    cache.put((1, "b"), 11)
    assert cache.get((1, "a")) == 10  # now the most recently used
    cache.put((2, "a"), 12)
    assert cache.get((1, "b")) is None  # the least recently used made room
    clock[0] += 61
    assert cache.get((1, "a")) is None  # expired


def test_a_gdpr_purge_leaves_no_version_of_the_users_flows(flow, make_user, settings, tmp_path):
    from accounts import gdpr

    settings.GDPR_LEDGER_PATH = tmp_path / "ledger.jsonl"
    start(flow)
    flow.flow_data = edited(GRAPH)
    flow.save()
    start(flow)
    staying = Flow.objects.create(user=make_user(), name="g", flow_data=GRAPH)
    start(staying)
    gdpr.request_deletion(flow.user)

    gdpr.purge_user(User.objects.get(pk=flow.user.pk), batch_size=1000)

    assert list(FlowVersion.objects.values_list("flow_id", flat=True)) == [staying.pk]
