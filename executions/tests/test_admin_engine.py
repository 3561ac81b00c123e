"""Staff tools: run a flow now, cancel executions, read the path an execution took."""

from __future__ import annotations

import pytest

from executions.models import FlowExecution
from flows.models import Flow

pytestmark = pytest.mark.django_db

GRAPH = {
    "nodes": [
        {"id": "t", "type": "trigger.manual", "config": {}},
        {"id": "c", "type": "logic.condition", "config": {"left": "{{ trigger.x }}", "op": "exists"}},
        {"id": "yes", "type": "logic.set", "config": {"values": {"a": 1}}},
        {"id": "no", "type": "logic.set", "config": {"values": {"a": 2}}},
    ],
    "edges": [
        {"source": "t", "target": "c"},
        {"source": "c", "target": "yes", "port": "true"},
        {"source": "c", "target": "no", "port": "false"},
    ],
}


def test_staff_run_a_flow_now(staff, user):
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    response = staff.post("/admin/flows/flow/", {"action": "run_now", "_selected_action": [flow.pk]}, follow=True)
    assert "Started 1 run(s)." in response.content.decode()
    assert FlowExecution.objects.get().trigger_type == "trigger.manual"


def test_staff_cannot_run_an_incomplete_flow(staff, user):
    flow = Flow.objects.create(user=user, name="f", flow_data={"nodes": [], "edges": []})
    response = staff.post("/admin/flows/flow/", {"action": "run_now", "_selected_action": [flow.pk]}, follow=True)
    assert "the flow needs a trigger node" in response.content.decode()
    assert not FlowExecution.objects.exists()


def test_staff_cancel_executions(staff, user):
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    pending = FlowExecution.objects.create(flow=flow, user=user)
    done = FlowExecution.objects.create(flow=flow, user=user, status="succeeded")
    staff.post(
        "/admin/executions/flowexecution/",
        {"action": "cancel_executions", "_selected_action": [pending.pk, done.pk]},
    )
    pending.refresh_from_db()
    done.refresh_from_db()
    assert pending.status == "cancelled"
    assert done.status == "succeeded"


def test_the_execution_page_shows_the_path_taken(staff, user):
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    execution = FlowExecution.objects.create(
        flow=flow,
        user=user,
        status="failed",
        error='Step "yes" failed: HTTP 503',
        execution_log=[
            {
                "node_id": "c",
                "type": "logic.condition",
                "status": "succeeded",
                "attempt": 1,
                "port": "true",
                "duration_ms": 0.4,
                "output": {"result": True},
                "error": None,
            },
            {
                "node_id": "yes",
                "type": "logic.set",
                "status": "failed",
                "attempt": 1,
                "duration_ms": 12.0,
                "output": None,
                "error": "HTTP 503 <script>alert(1)</script>",
            },
        ],
    )
    page = staff.get(f"/admin/executions/flowexecution/{execution.pk}/change/").content.decode()
    assert '<svg class="inflow-graph"' in page
    assert 'data-node-id="c" data-status="succeeded"' in page
    assert 'data-node-id="yes" data-status="failed"' in page
    assert 'data-node-id="no" data-status=""' in page  # the branch not taken
    assert "12.0 ms" in page
    assert "0.4 ms" in page
    assert "<script>alert(1)</script>" not in page
    assert "HTTP 503 &lt;script&gt;" in page


def test_the_flow_page_lists_recent_runs_with_readable_dates(staff, user):
    from datetime import UTC, datetime

    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    run = FlowExecution.objects.create(
        flow=flow, user=user, status="succeeded", started_at=datetime(2026, 12, 1, 18, 1, 20, 152391, tzinfo=UTC)
    )
    page = staff.get(f"/admin/flows/flow/{flow.pk}/change/").content.decode()
    assert f"#{run.pk}</a> succeeded at Dec. 1, 2026, 6:01 p.m. (" in page
    assert "18:01:20.152391" not in page


def test_steps_shorter_than_the_display_unit_do_not_show_as_zero(staff, user):
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    step = {"node_id": "c", "type": "logic.condition", "status": "succeeded", "attempt": 1, "port": "true"}
    execution = FlowExecution.objects.create(flow=flow, user=user, execution_log=[{**step, "duration_ms": 0.012}])
    page = staff.get(f"/admin/executions/flowexecution/{execution.pk}/change/").content.decode()
    assert page.count("&lt;0.1 ms") == 2  # in the steps table and on the picture's badge
    assert "0.0 ms" not in page


def test_the_flow_page_draws_the_graph_and_lists_problems(staff, user):
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    page = staff.get(f"/admin/flows/flow/{flow.pk}/change/").content.decode()
    assert page.count('class="inflow-node"') == 4
    assert ">true</text>" in page
    assert "None: the graph is complete and valid." in page


def test_admin_edits_are_validated(staff, user):
    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    response = staff.post(
        f"/admin/flows/flow/{flow.pk}/change/",
        {"user": user.pk, "name": "f", "status": "active", "flow_data": '{"nodes": [], "edges": []}'},
    )
    assert response.status_code == 200
    assert "the flow needs a trigger node" in response.content.decode()
    flow.refresh_from_db()
    assert flow.status == "draft"


def test_the_admin_index_charts_executions_per_hour_by_status(staff, user, django_assert_max_num_queries):
    from datetime import timedelta

    from django.utils import timezone

    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    now = timezone.now()
    FlowExecution.objects.bulk_create(
        [FlowExecution(flow=flow, user=user, status="succeeded", started_at=now) for _ in range(3)]
        + [FlowExecution(flow=flow, user=user, status="failed", started_at=now - timedelta(hours=2))]
        + [FlowExecution(flow=flow, user=user, status="succeeded", started_at=now - timedelta(days=2))]
    )
    with django_assert_max_num_queries(12):
        page = staff.get("/admin/").content.decode()
    assert 'id="executions-per-hour"' in page
    assert f'data-hour="{now:%H}" data-status="succeeded" data-count="3"' in page
    assert f'data-hour="{now - timedelta(hours=2):%H}" data-status="failed" data-count="1"' in page
    assert page.count('class="inflow-bar"') == 2  # the run of two days ago is out of range
