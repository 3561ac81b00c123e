"""The authorization matrix: user B against every object route of user A, and the admin.

Routes are read from the OpenAPI schema, so a new `{id}` route without a case here fails
the suite instead of going untested.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, DeletionRecord, User
from executions.models import FlowExecution
from flows.models import Flow, NodeType
from knowledge.models import Document
from tokens.models import ApiToken, MetaWebhookDelivery

pytestmark = pytest.mark.django_db

GRAPH = {
    "nodes": [
        {"id": "t", "type": "trigger.manual", "config": {}},
        {"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}},
    ],
    "edges": [{"source": "t", "target": "s"}],
}


@pytest.fixture
def owned(make_user):
    """User A's objects, one of each kind an `{id}` route can address."""
    owner = make_user(email="owner@example.com")
    flow = Flow.objects.create(user=owner, name="A's flow", flow_data=GRAPH, status="active")
    execution = FlowExecution.objects.create(flow=flow, user=owner, status="waiting", resume_at=timezone.now())
    token = ApiToken(user=owner, provider="instagram", account_id="17841400000777")
    token.set_token("IGQVJowner-token-value-000000")
    token.save()
    document = Document.objects.create(user=owner, title="A's FAQ", content="Secret plans.", status="failed")
    return {"owner": owner, "flows": flow, "executions": execution, "tokens": token, "documents": document}


def object_for(path: str, owned: dict):
    for prefix, key in [
        ("/api/v1/flows/", "flows"),
        ("/api/v1/executions/", "executions"),
        ("/api/v1/tokens/", "tokens"),
        ("/api/v1/knowledge/documents/", "documents"),
    ]:
        if path.startswith(prefix):
            return owned[key]
    return None


BODIES = {
    "/api/v1/flows/{id}/": {"name": "hijacked", "flow_data": GRAPH, "status": "draft"},
    "/api/v1/flows/{id}/run/": {"trigger_data": {}},
    "/api/v1/knowledge/documents/{id}/": {"title": "hijacked", "content": "hijacked"},
}


def object_routes(anon) -> list[tuple[str, str]]:
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return [
        (path, method)
        for path, operations in schema["paths"].items()
        if "{id}" in path
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_user_b_gets_404_on_every_object_route_of_user_a(anon, owned, client_for, other_user):
    stranger = client_for(other_user)
    routes = object_routes(anon)
    assert len(routes) >= 12
    for path, method in routes:
        target = object_for(path, owned)
        assert target is not None, f"{path}: add a case to the authorization matrix"
        url = path.replace("{id}", str(target.pk))
        response = getattr(stranger, method)(url, BODIES.get(path, {}), format="json")
        assert response.status_code == 404, f"{method.upper()} {path} answered {response.status_code}"
        assert response.json() == {"detail": "Not found.", "code": "not_found"}

    owned["flows"].refresh_from_db()
    owned["documents"].refresh_from_db()
    assert owned["flows"].name == "A's flow"
    assert owned["documents"].title == "A's FAQ"
    assert FlowExecution.objects.get(pk=owned["executions"].pk).status == "waiting"
    assert ApiToken.objects.filter(pk=owned["tokens"].pk).exists()
    assert FlowExecution.objects.filter(flow=owned["flows"]).count() == 1  # no run was started


def test_lists_and_search_show_user_b_nothing_of_user_a(owned, client_for, other_user):
    stranger = client_for(other_user)
    for path in ["/api/v1/flows/", "/api/v1/executions/", "/api/v1/tokens/", "/api/v1/knowledge/documents/"]:
        assert stranger.get(path).json()["results"] == [], path
    assert stranger.get("/api/v1/executions/", {"flow": owned["flows"].pk}).json()["results"] == []
    assert stranger.get("/api/v1/knowledge/search/", {"q": "Secret plans"}).json()["results"] == []
    export = b"".join(stranger.get("/api/v1/privacy/export/").streaming_content)
    assert b"A's flow" not in export
    assert b"Secret plans" not in export


def test_writable_payloads_cannot_set_owner_status_or_ids(owned, client_for):
    owner = owned["owner"]
    api = client_for(owner)
    other = User.objects.create_user("victim@example.com", "correct-horse-battery-staple", name="Victim")

    flow = api.post(
        "/api/v1/flows/",
        {"name": "mine", "flow_data": GRAPH, "id": 424242, "created_at": "2001-01-01T00:00:00Z", "webhook_url": "x"},
        format="json",
    )
    assert flow.status_code == 201
    assert flow.json()["id"] != 424242
    assert Flow.objects.get(pk=flow.json()["id"]).created_at.year > 2001
    for owner_field in ("user", "owner", "user_id"):
        refused = api.post("/api/v1/flows/", {"name": "x", "flow_data": GRAPH, owner_field: other.pk}, format="json")
        assert refused.status_code == 400, owner_field
    assert not Flow.objects.filter(user=other).exists()

    token = api.post(
        "/api/v1/tokens/",
        {
            "provider": "instagram",
            "account_id": "17841400000888",
            "access_token": "IGQVJanother-token-000000",
            "status": "revoked",
            "token_hint": "forged",
            "id": 99,
        },
        format="json",
    )
    assert token.status_code == 201
    saved = ApiToken.objects.get(pk=token.json()["id"])
    assert (saved.status, saved.token_hint, saved.user_id) == ("active", "…0000", owner.pk)

    document = api.post(
        "/api/v1/knowledge/documents/",
        {"title": "t", "content": "c", "status": "ready", "chunk_count": 99, "id": 7},
        format="json",
    )
    assert document.status_code == 201
    created = Document.objects.get(pk=document.json()["id"])
    assert (created.status, created.chunk_count, created.user_id) == ("queued", 0, owner.pk)

    run = api.post(
        f"/api/v1/flows/{owned['flows'].pk}/run/", {"trigger_data": {}, "status": "succeeded"}, format="json"
    )
    assert run.status_code == 400  # an execution's status is the engine's, never the client's


def admin_change_urls(owned) -> list[str]:
    """A change page for one object of every model registered in the admin."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    objects = {
        User: owned["owner"],
        Flow: owned["flows"],
        FlowExecution: owned["executions"],
        ApiToken: owned["tokens"],
        Document: owned["documents"],
        ApiKey: ApiKey.issue(owned["owner"])[0],
        NodeType: NodeType.objects.first(),
        DeletionRecord: DeletionRecord.objects.create(subject="user", pseudonym="0" * 64),
        MetaWebhookDelivery: MetaWebhookDelivery.objects.create(object="instagram", payload={"entry": []}),
        PeriodicTask: PeriodicTask.objects.create(
            name="t", task="executions.tasks.sweep_executions", crontab=CrontabSchedule.objects.create()
        ),
    }
    urls = []
    for model in admin.site._registry:
        instance = objects.get(model)
        if instance is None:
            instance = model.objects.first()
        if instance is None:
            urls.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
            continue
        urls.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[instance.pk]))
    return urls


def test_non_staff_users_have_no_access_to_any_admin_page(owned, make_user):
    member = make_user()
    browser = Client()
    browser.force_login(member)
    urls = admin_change_urls(owned)
    assert len(urls) >= len(admin.site._registry)
    for url in ["/admin/", *urls]:
        response = browser.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url
        assert b"Secret plans" not in response.content


def test_staff_can_open_every_admin_change_page(owned, make_user):
    staff = Client()
    staff.force_login(make_user(role=User.Role.ADMIN, is_superuser=True))
    for url in admin_change_urls(owned):
        response = staff.get(url)
        assert response.status_code == 200, url
        assert b"IGQVJowner-token-value" not in response.content, url


def test_the_admin_enforces_csrf(owned, make_user):
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(make_user(role=User.Role.ADMIN, is_superuser=True))
    flow = owned["flows"]
    response = staff.post(
        f"/admin/flows/flow/{flow.pk}/change/",
        {"user": flow.user_id, "name": "changed", "status": "draft", "flow_data": "{}"},
    )
    assert response.status_code == 403
    flow.refresh_from_db()
    assert flow.name == "A's flow"
