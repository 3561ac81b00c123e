"""The authorization matrix: user B against every object route of user A, and the admin.

API routes are read from the OpenAPI schema and admin routes from the admin's URL patterns,
and the URL resolver is checked against both: a new route that takes an object id, without
a case here, fails the suite instead of going untested.
"""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import ApiKey, DeletionRecord, User
from executions.models import FlowExecution
from flows.models import Flow, NodeType
from knowledge.models import Document
from tokens.models import ApiToken, ContactWindow, MetaWebhookDelivery, PrivateReply
from tokens.tests.meta import fake_graph

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


def test_writable_payloads_cannot_set_owner_status_or_ids(owned, client_for, settings):
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

    with fake_graph(settings) as meta:  # Meta confirms the token is the account's
        meta.owns("IGQVJanother-token-000000", "17841400000888")
        token = api.post(
            "/api/v1/tokens/",
            {
                "provider": "instagram",
                "account_id": "17841400000888",
                "access_token": "IGQVJanother-token-000000",
                "status": "revoked",
                "token_hint": "forged",
                "account_name": "forged",
                "id": 99,
            },
            format="json",
        )
    assert token.status_code == 201
    saved = ApiToken.objects.get(pk=token.json()["id"])
    assert (saved.status, saved.token_hint, saved.account_name, saved.user_id) == (
        "active",
        "…0000",
        "inflow.shop",  # Meta's word for it, not the client's
        owner.pk,
    )

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


def admin_objects(owned) -> dict:
    """One object of every model registered in the admin (None when there is none)."""
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
        ContactWindow: ContactWindow.objects.create(
            token=owned["tokens"], contact_id="5550001", last_inbound_at=timezone.now()
        ),
        PrivateReply: PrivateReply.objects.create(token=owned["tokens"], comment_id="1790001", status="sent"),
        PeriodicTask: PeriodicTask.objects.create(
            name="t", task="executions.tasks.sweep_executions", crontab=CrontabSchedule.objects.create()
        ),
    }
    return {model: objects.get(model) or model.objects.first() for model in admin.site._registry}


def admin_change_urls(owned) -> list[str]:
    """A change page for one object of every model registered in the admin."""
    urls = []
    for model, instance in admin_objects(owned).items():
        if instance is None:
            urls.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
            continue
        urls.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[instance.pk]))
    return urls


# The admin pages anyone may open: the login form, and logout (which only ends a session).
OPEN_ADMIN_PAGES = {"login", "logout"}


def every_admin_url(owned) -> list[str]:
    """Every route of the admin, read from its URL patterns, with real ids filled in.

    Each registered model's own routes (changelist, add, change, delete, history, the
    password form, custom views such as "Try a search") and the site's (index, app
    indexes, password change, autocomplete, view on site). A route with a parameter this
    does not know fails the test instead of going unwalked.
    """
    from django.contrib.contenttypes.models import ContentType

    flow = owned["flows"]
    site_values = {"app_label": "flows", "content_type_id": ContentType.objects.get_for_model(Flow).pk}
    urls = []
    for pattern in admin.site.get_urls():
        if not isinstance(pattern, URLPattern) or pattern.name in OPEN_ADMIN_PAGES:
            continue  # model routes are walked below; the catch-all only redirects
        if pattern.name is None:
            continue
        urls.append(_fill(pattern, "", {**site_values, "object_id": flow.pk}))
    for model, instance in admin_objects(owned).items():
        prefix = f"{model._meta.app_label}/{model._meta.model_name}/"
        for pattern in admin.site._registry[model].urls:
            if pattern.name is None:  # the bare `<object_id>/` redirect to the change page
                continue
            pk = instance.pk if instance is not None else 1  # no object yet: the route is guarded all the same
            urls.append(_fill(pattern, prefix, {"object_id": pk, "id": pk}))
    return urls


def _fill(pattern: URLPattern, prefix: str, values: dict) -> str:
    route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
    route = re.sub(r"\(\?P<app_label>[^)]*\)", "<app_label>", route)
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)
    unknown = [name for name in names if name not in values]
    assert not unknown, f"admin route {route}: add a value for {unknown} to the authorization matrix"
    return "/admin/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)


def resolver_routes() -> list[str]:
    """Every URL pattern of the project as a route string, converters and regex groups kept."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            else:
                yield route

    return list(walk(get_resolver().url_patterns, "/"))


def test_every_object_route_of_the_url_resolver_is_in_the_matrix(anon):
    """The schema-driven walk above sees only what the schema lists: the URL resolver has
    the last word. Each route that takes an object id must be an API `{id}` route of the
    schema, an admin route (walked by every_admin_url) or one named here."""
    schema_routes = {path for path, _ in object_routes(anon)}
    walked_elsewhere = {
        "/webhooks/flows/<int:flow_id>/<str:secret>/": "test_the_flow_webhook_of_user_a_is_a_404_for_anyone_else",
    }
    for route in resolver_routes():
        if not re.search(r"<(?:\w+:)?(?:pk|id|object_id|\w+_id)>|\(\?P<pk>", route):
            continue
        if route.startswith("/admin/"):
            continue
        api_route = re.sub(r"\(\?P<pk>[^)]*\)", "{id}", route)
        assert api_route in schema_routes or route in walked_elsewhere, f"{route}: add it to the authorization matrix"


def test_the_flow_webhook_of_user_a_is_a_404_for_anyone_else(anon, owned, other_user):
    """Flow webhooks authenticate by their secret: another flow's secret (even the caller's own) opens nothing."""
    hook = {"nodes": [{"id": "t", "type": "trigger.webhook", "config": {}}], "edges": []}
    theirs = Flow.objects.create(user=owned["owner"], name="A's hook", flow_data=hook, status="active")
    mine = Flow.objects.create(user=other_user, name="B's hook", flow_data=hook, status="active")
    for secret in (mine.webhook_secret, theirs.webhook_secret[:-1], theirs.webhook_secret.upper(), "x"):
        response = anon.post(f"/webhooks/flows/{theirs.pk}/{secret}/", {"order": 1}, format="json")
        assert response.status_code == 404, secret[:4]
        assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert not FlowExecution.objects.filter(flow=theirs).exists()
    assert anon.post(f"/webhooks/flows/{theirs.pk}/{theirs.webhook_secret}/", {}, format="json").status_code == 202


def test_non_staff_users_have_no_access_to_any_admin_page(owned, make_user):
    """Every admin route, GET and POST, for a signed-in client and for a disabled staff member."""
    member = make_user()
    former_staff = make_user(role=User.Role.ADMIN, is_superuser=True, is_active=False)
    urls = every_admin_url(owned)
    assert len(urls) >= 5 * len(admin.site._registry)  # changelist, add, change, delete, history each
    for user in (member, former_staff):
        browser = Client()
        browser.force_login(user)
        for url in urls:
            for method in ("get", "post"):
                response = getattr(browser, method)(url)
                assert response.status_code == 302, f"{method.upper()} {url} answered {response.status_code}"
                assert response["Location"].startswith("/admin/login/"), url
                assert b"Secret plans" not in response.content
    owned["flows"].refresh_from_db()
    assert owned["flows"].name == "A's flow"
    assert User.objects.filter(pk=owned["owner"].pk).exists()
    assert Document.objects.filter(pk=owned["documents"].pk).exists()


def test_staff_can_open_every_admin_change_page(owned, staff):
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
