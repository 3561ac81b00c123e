from __future__ import annotations

import pytest
from django.db import connection

from flows.filters import FlowFilter
from flows.models import Flow

pytestmark = pytest.mark.django_db

SIMPLE_GRAPH = {
    "nodes": [
        {"id": "t", "type": "trigger.manual", "config": {}},
        {"id": "s", "type": "logic.set", "config": {"values": {"greeting": "hi"}}},
    ],
    "edges": [{"source": "t", "target": "s"}],
}


def comment_graph() -> dict:
    return {
        "nodes": [
            {"id": "t", "type": "instagram.comment", "config": {"keywords": ["price"]}},
            {"id": "a", "type": "instagram.private_reply", "config": {"text": "Hi {{ trigger.username }}!"}},
        ],
        "edges": [{"source": "t", "target": "a"}],
    }


def test_a_new_client_can_build_and_find_flows(anon, other_user, client_for):
    """register -> token -> create -> list -> filter by uses_node; another user sees nothing."""
    anon.post(
        "/api/v1/auth/register/",
        {"email": "maker@example.com", "password": "correct-horse-battery-staple", "name": "Maker"},
        format="json",
    )
    token = anon.post(
        "/api/v1/auth/token/",
        {"email": "maker@example.com", "password": "correct-horse-battery-staple"},
        format="json",
    ).json()["token"]
    anon.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    created = anon.post("/api/v1/flows/", {"name": "Price replies", "flow_data": comment_graph()}, format="json")
    assert created.status_code == 201, created.json()
    flow_id = created.json()["id"]
    anon.post("/api/v1/flows/", {"name": "Manual", "flow_data": SIMPLE_GRAPH}, format="json")

    listing = anon.get("/api/v1/flows/").json()
    assert listing["count"] == 2
    filtered = anon.get("/api/v1/flows/", {"uses_node": "instagram.private_reply"}).json()
    assert [f["id"] for f in filtered["results"]] == [flow_id]
    assert anon.get("/api/v1/flows/", {"uses_node": "http.request"}).json()["count"] == 0

    stranger = client_for(other_user)
    assert stranger.get(f"/api/v1/flows/{flow_id}/").status_code == 404
    assert stranger.patch(f"/api/v1/flows/{flow_id}/", {"name": "x"}, format="json").status_code == 404
    assert stranger.delete(f"/api/v1/flows/{flow_id}/").status_code == 404
    assert stranger.get("/api/v1/flows/").json()["count"] == 0
    assert Flow.objects.get(pk=flow_id).name == "Price replies"


def test_flow_crud(api):
    flow = api.post("/api/v1/flows/", {"name": "One", "flow_data": SIMPLE_GRAPH}, format="json").json()
    assert flow["status"] == "draft"
    updated = api.put(
        f"/api/v1/flows/{flow['id']}/", {"name": "Two", "flow_data": SIMPLE_GRAPH, "status": "draft"}, format="json"
    )
    assert updated.status_code == 200
    assert api.patch(f"/api/v1/flows/{flow['id']}/", {"name": "Three"}, format="json").json()["name"] == "Three"
    assert api.delete(f"/api/v1/flows/{flow['id']}/").status_code == 204
    assert api.get(f"/api/v1/flows/{flow['id']}/").status_code == 404


def test_status_filter(api, user):
    Flow.objects.create(user=user, name="d", flow_data=SIMPLE_GRAPH)
    Flow.objects.create(user=user, name="p", flow_data=SIMPLE_GRAPH, status=Flow.Status.PAUSED)
    body = api.get("/api/v1/flows/", {"status": "paused"}).json()
    assert [f["name"] for f in body["results"]] == ["p"]
    assert api.get("/api/v1/flows/", {"status": "bogus"}).status_code == 400


def test_the_client_cannot_set_the_owner_or_id(api, user, other_user):
    response = api.post(
        "/api/v1/flows/",
        {"name": "Mine", "flow_data": SIMPLE_GRAPH, "id": 999, "created_at": "2000-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 201
    flow = Flow.objects.get(pk=response.json()["id"])
    assert flow.user_id == user.id
    assert flow.pk != 999
    assert flow.created_at.year > 2000
    sneaky = api.post("/api/v1/flows/", {"name": "x", "flow_data": SIMPLE_GRAPH, "user": other_user.id}, format="json")
    assert sneaky.status_code == 400


def test_uses_node_is_served_by_the_gin_index(user):
    Flow.objects.bulk_create(
        Flow(user=user, name=f"f{i}", flow_data=SIMPLE_GRAPH if i % 2 else comment_graph()) for i in range(200)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE flows")
        cursor.execute("SET LOCAL enable_seqscan = off")
    # The API's own ?uses_node= filter, not a hand-written copy of it. (Within one user's
    # flows the planner may rightly prefer flows_user_id_idx; here every row is one user's.)
    filtered = FlowFilter({"uses_node": "instagram.comment"}, queryset=Flow.objects.all()).qs
    plan = filtered.explain()
    assert "flows_flow_data_gin" in plan, plan
    assert "@>" in plan
    assert filtered.count() == 100


WEBHOOK_GRAPH = {
    "nodes": [
        {"id": "t", "type": "trigger.webhook", "config": {}},
        {"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}},
    ],
    "edges": [{"source": "t", "target": "s"}],
}


def test_list_queries_do_not_grow_with_rows(api, user, django_assert_max_num_queries):
    Flow.objects.bulk_create(
        Flow(user=user, name=f"f{i}", flow_data=WEBHOOK_GRAPH if i % 2 else SIMPLE_GRAPH) for i in range(30)
    )
    with django_assert_max_num_queries(4):
        body = api.get("/api/v1/flows/").json()
    urls = [flow["webhook_url"] for flow in body["results"]]
    assert sum(url is not None for url in urls) == 15
    secrets = {flow.pk: flow.webhook_secret for flow in Flow.objects.all()}
    for flow in body["results"]:
        if flow["webhook_url"]:
            assert flow["webhook_url"].endswith(f"/{flow['id']}/{secrets[flow['id']]}/")


def test_the_list_decrypts_only_the_secrets_it_shows(user):
    Flow.objects.create(user=user, name="manual", flow_data=SIMPLE_GRAPH)
    hooked = Flow.objects.create(user=user, name="hooked", flow_data=WEBHOOK_GRAPH)
    rows = {flow.name: flow.used_webhook_secret for flow in Flow.objects.with_webhook_secrets()}
    assert rows == {"manual": None, "hooked": Flow.objects.get(pk=hooked.pk).webhook_secret}


def test_the_admin_shows_a_flows_graph_as_indented_json(make_user, staff):
    flow = Flow.objects.create(user=make_user(), name="f", flow_data=SIMPLE_GRAPH)
    page = staff.get(f"/admin/flows/flow/{flow.pk}/change/").content.decode()
    assert "\n  &quot;nodes&quot;: [\n" in page  # one key per line, editable by hand
