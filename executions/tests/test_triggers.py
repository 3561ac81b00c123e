"""Manual runs, schedules kept in django-celery-beat, generic webhooks, dedup, retention."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from executions.models import FlowExecution
from executions.services import start_execution
from executions.tasks import purge_old_executions, run_scheduled_flow
from flows.models import Flow
from flows.schedules import remove_schedules, sync_schedule

pytestmark = pytest.mark.django_db


def graph(trigger_type: str, trigger_config: dict | None = None) -> dict:
    return {
        "nodes": [
            {"id": "t", "type": trigger_type, "config": trigger_config or {}},
            {"id": "s", "type": "logic.set", "config": {"values": {"x": "{{ trigger.x }}"}}},
        ],
        "edges": [{"source": "t", "target": "s"}],
    }


def create(api, flow_data: dict, status: str = "active") -> dict:
    response = api.post("/api/v1/flows/", {"name": "f", "flow_data": flow_data, "status": status}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_manual_run_answers_202_with_a_pending_execution(api, django_capture_on_commit_callbacks):
    flow = create(api, graph("trigger.manual"), status="draft")
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(f"/api/v1/flows/{flow['id']}/run/", {"trigger_data": {"x": 1}}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert response.json()["trigger_data"] == {"x": 1}
    assert len(callbacks) == 1  # enqueued only once the row is committed


def test_manual_run_refuses_paused_flows_and_other_users(api, client_for, other_user):
    flow = create(api, graph("trigger.manual"), status="paused")
    assert api.post(f"/api/v1/flows/{flow['id']}/run/", {}, format="json").status_code == 409
    assert client_for(other_user).post(f"/api/v1/flows/{flow['id']}/run/", {}, format="json").status_code == 404
    assert api.post(f"/api/v1/flows/{flow['id']}/run/", {"trigger_data": "text"}, format="json").status_code == 400


def test_schedules_follow_the_flow_status(api):
    flow = create(api, graph("trigger.schedule", {"cron": "*/15 9-17 * * 1-5", "timezone": "Europe/Paris"}))
    task = PeriodicTask.objects.get(name=f"flow-{flow['id']}-schedule")
    assert task.enabled
    assert json.loads(task.args) == [flow["id"]]
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("*/15", "9-17", "1-5")
    assert str(task.crontab.timezone) == "Europe/Paris"

    edited = graph("trigger.schedule", {"cron": "0 8 * * *"})
    api.patch(f"/api/v1/flows/{flow['id']}/", {"flow_data": edited}, format="json")
    assert PeriodicTask.objects.get(name=f"flow-{flow['id']}-schedule").crontab.hour == "8"

    api.patch(f"/api/v1/flows/{flow['id']}/", {"status": "paused"}, format="json")
    assert not PeriodicTask.objects.filter(name=f"flow-{flow['id']}-schedule").exists()
    api.patch(f"/api/v1/flows/{flow['id']}/", {"status": "active"}, format="json")
    assert PeriodicTask.objects.filter(name=f"flow-{flow['id']}-schedule").exists()
    api.delete(f"/api/v1/flows/{flow['id']}/")
    assert not PeriodicTask.objects.filter(name__startswith="flow-").exists()


def crontab_of(flow: dict) -> int:
    return PeriodicTask.objects.get(name=f"flow-{flow['id']}-schedule").crontab_id


def test_a_crontab_no_task_uses_any_more_is_deleted(api):
    first = create(api, graph("trigger.schedule", {"cron": "0 9 * * *"}))
    second = create(api, graph("trigger.schedule", {"cron": "0 9 * * *"}))
    shared = crontab_of(first)
    assert crontab_of(second) == shared
    staff_task = PeriodicTask.objects.create(
        name="staff's own", task="executions.tasks.sweep_executions", crontab=CrontabSchedule.objects.create(minute="5")
    )

    moved = graph("trigger.schedule", {"cron": "30 9 * * *"})
    api.patch(f"/api/v1/flows/{first['id']}/", {"flow_data": moved}, format="json")
    assert CrontabSchedule.objects.filter(pk=shared).exists()  # the second flow still uses it
    api.patch(f"/api/v1/flows/{second['id']}/", {"status": "paused"}, format="json")
    assert not CrontabSchedule.objects.filter(pk=shared).exists()
    api.delete(f"/api/v1/flows/{first['id']}/")

    assert list(CrontabSchedule.objects.values_list("pk", flat=True)) == [staff_task.crontab_id]


@pytest.mark.django_db(transaction=True)
def test_a_crontab_another_flow_is_switching_to_is_kept(user):
    flow = Flow.objects.create(
        user=user, name="f", flow_data=graph("trigger.schedule", {"cron": "0 9 * * *"}), status="active"
    )
    crontab = sync_schedule(flow).crontab_id
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    with psycopg.connect(**params) as other:  # a sync_schedule of another flow holds the row
        other.execute("SELECT id FROM django_celery_beat_crontabschedule WHERE id = %s FOR UPDATE", [crontab])
        remove_schedules([flow.pk])
        assert CrontabSchedule.objects.filter(pk=crontab).exists()
        other.rollback()
    sync_schedule(flow)  # the flow takes the row it left again rather than a duplicate
    assert list(CrontabSchedule.objects.values_list("pk", flat=True)) == [crontab]


def test_a_scheduled_tick_starts_one_run_per_minute(api):
    flow = create(api, graph("trigger.schedule", {"cron": "* * * * *"}))
    run_scheduled_flow(flow["id"])
    run_scheduled_flow(flow["id"])  # a second beat firing in the same minute
    runs = FlowExecution.objects.filter(flow_id=flow["id"])
    assert runs.count() == 1
    assert runs.get().trigger_type == "trigger.schedule"
    Flow.objects.filter(pk=flow["id"]).update(status="paused")
    FlowExecution.objects.all().delete()
    run_scheduled_flow(flow["id"])
    assert not FlowExecution.objects.exists()


def test_the_generic_webhook_starts_a_run_with_the_body(api, anon, client_for, other_user):
    flow = create(api, graph("trigger.webhook"))
    url = flow["webhook_url"]
    assert url.startswith("http://testserver/webhooks/flows/")

    response = anon.post(url, {"x": 42, "nested": {"ok": True}}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert response.status_code == 202
    execution = FlowExecution.objects.get(pk=response.json()["execution"])
    assert execution.trigger_data == {"x": 42, "nested": {"ok": True}}
    assert execution.trigger_type == "trigger.webhook"

    again = anon.post(url, {"x": 42}, format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert again.json() == {"execution": execution.pk, "created": False}
    assert FlowExecution.objects.count() == 1


def test_the_generic_webhook_refuses_wrong_secrets_and_bad_bodies(api, anon):
    flow = create(api, graph("trigger.webhook"))
    url = flow["webhook_url"]
    wrong = url.replace("/webhooks/flows/", "/webhooks/flows/").rstrip("/") + "x/"
    assert anon.post(wrong, {}, format="json").status_code == 404
    assert anon.post(url.replace(f"/{flow['id']}/", "/999999/"), {}, format="json").status_code == 404
    assert anon.generic("POST", url, b"{nope", content_type="application/json").status_code == 400
    assert anon.post(url, [1, 2], format="json").status_code == 400
    assert anon.get(url).status_code == 405
    api.patch(f"/api/v1/flows/{flow['id']}/", {"status": "paused"}, format="json")
    assert anon.post(url, {}, format="json").status_code == 409
    assert not FlowExecution.objects.exists()


def test_staff_switching_a_trigger_type_off_stops_new_runs(api, anon, monkeypatch):
    from executions import runner
    from flows.models import NodeType

    webhook = create(api, graph("trigger.webhook"))
    scheduled = create(api, graph("trigger.schedule", {"cron": "* * * * *"}))
    NodeType.objects.filter(type__in=["trigger.webhook", "trigger.schedule"]).update(enabled=False)
    monkeypatch.setattr(runner, "_disabled_cache", (0.0, frozenset()))  # forget the cached list now

    response = anon.post(webhook["webhook_url"], {"x": 1}, format="json")
    run_scheduled_flow(scheduled["id"])

    assert response.status_code == 409
    assert response.json()["code"] == "node_type_disabled"
    assert not FlowExecution.objects.exists()


def test_dedup_keys_never_make_a_second_execution(user):
    flow = Flow.objects.create(user=user, name="f", flow_data=graph("trigger.manual"), status="active")
    first, created = start_execution(flow=flow, trigger_type="trigger.manual", trigger_data={}, dedup_key="evt-1")
    second, created_again = start_execution(
        flow=flow, trigger_type="trigger.manual", trigger_data={}, dedup_key="evt-1"
    )
    assert created
    assert not created_again
    assert first.pk == second.pk
    other_flow = Flow.objects.create(user=user, name="g", flow_data=graph("trigger.manual"), status="active")
    _, created_elsewhere = start_execution(
        flow=other_flow, trigger_type="trigger.manual", trigger_data={}, dedup_key="evt-1"
    )
    assert created_elsewhere  # the key is unique per flow


def test_retention_deletes_old_finished_runs_only(user, settings, django_assert_max_num_queries):
    settings.EXECUTION_RETENTION_DAYS = 30
    flow = Flow.objects.create(user=user, name="f", flow_data=graph("trigger.manual"))
    old = timezone.now() - timedelta(days=31)
    recent = timezone.now() - timedelta(days=2)

    def make(status, completed_at, count=1):
        FlowExecution.objects.bulk_create(
            FlowExecution(
                flow=flow, user=user, status=status, completed_at=completed_at, started_at=completed_at or old
            )
            for _ in range(count)
        )

    make("succeeded", old, count=25)
    make("failed", old)
    make("cancelled", old)
    make("succeeded", recent)
    make("running", None)
    make("waiting", None)

    with django_assert_max_num_queries(12):
        deleted = purge_old_executions(batch_size=10)

    assert deleted == 27
    assert sorted(FlowExecution.objects.values_list("status", flat=True)) == ["running", "succeeded", "waiting"]


def test_the_generic_webhook_is_rate_limited_per_flow(api, anon, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"webhooks": "3/min"}}
    flow = create(api, graph("trigger.webhook"))
    codes = [anon.post(flow["webhook_url"], {"x": n}, format="json").status_code for n in range(4)]
    assert codes == [202, 202, 202, 429]
    throttled = anon.post(flow["webhook_url"], {}, format="json")
    assert throttled.json()["code"] == "throttled"
    assert int(throttled["Retry-After"]) >= 1
    assert FlowExecution.objects.count() == 3


def test_wrong_webhook_urls_do_not_use_up_the_flows_budget(api, anon, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"webhooks": "3/min"}}
    flow = create(api, graph("trigger.webhook"))
    wrong_url = f"/webhooks/flows/{flow['id']}/not-the-secret/"
    guesses = [anon.post(wrong_url, {}, format="json").status_code for _ in range(4)]
    assert guesses == [404, 404, 404, 429]  # the guesses of this address are limited...
    assert anon.post(flow["webhook_url"], {}, format="json").status_code == 202  # ...not the flow


def test_executions_are_listed_newest_first_by_cursor(api, user, django_assert_max_num_queries):
    from datetime import timedelta

    from django.utils import timezone

    flow = Flow.objects.create(user=user, name="f", flow_data=graph("trigger.manual"))
    now = timezone.now()
    FlowExecution.objects.bulk_create(
        FlowExecution(flow=flow, user=user, started_at=now - timedelta(minutes=n)) for n in range(7)
    )
    with django_assert_max_num_queries(3):  # no COUNT(*) over the history
        first = api.get("/api/v1/executions/", {"page_size": 3}).json()
    assert "count" not in first
    seen = [run["id"] for run in first["results"]]
    page = first
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [run["id"] for run in page["results"]]
    newest_first = list(FlowExecution.objects.order_by("-started_at").values_list("id", flat=True))
    assert seen == newest_first
    assert api.get("/api/v1/executions/", {"cursor": "garbage"}).status_code == 404
    assert api.get("/api/v1/executions/", {"page_size": "0"}).status_code == 400
