"""Admin pages: constant query counts, search through the blind index, no secrets."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import ApiKey, User
from executions.models import FlowExecution
from executions.services import start_execution
from flows.models import Flow
from tokens.models import ApiToken

pytestmark = pytest.mark.django_db


def changelists() -> list[str]:
    """Every model the admin shows, Celery beat's and results' included."""
    from django.contrib import admin

    return sorted(f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry)


_account_ids = itertools.count(1)


def populate(make_user, count: int) -> None:
    for _ in range(count):
        index = next(_account_ids)
        owner = make_user()
        ApiKey.issue(owner)
        flow = Flow.objects.create(user=owner, name=f"flow {index}", flow_data={"nodes": [], "edges": []})
        start_execution(flow=flow, trigger_type="trigger.manual", trigger_data={"text": "hi"})
        token = ApiToken(user=owner, provider="instagram", account_id=f"1784{index:08d}")
        token.set_token(f"secret-token-value-{index:04d}-abcdefgh")
        token.save()


def count_queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(context.captured_queries)


def test_changelists_run_a_constant_number_of_queries(staff, make_user):
    populate(make_user, 2)
    few = {path: count_queries(staff, path) for path in changelists()}
    populate(make_user, 15)
    many = {path: count_queries(staff, path) for path in changelists()}
    assert "/admin/flows/flowversion/" in many
    assert many == few


def test_change_pages_render(staff, make_user):
    populate(make_user, 1)
    user = User.objects.exclude(email_hash="").last()
    for path in [
        f"/admin/accounts/user/{user.pk}/change/",
        f"/admin/flows/flow/{Flow.objects.get().pk}/change/",
        f"/admin/executions/flowexecution/{FlowExecution.objects.get().pk}/change/",
        f"/admin/flows/flowversion/{FlowExecution.objects.get().flow_version_id}/change/",
        f"/admin/tokens/apitoken/{ApiToken.objects.get().pk}/change/",
        "/admin/accounts/user/add/",
    ]:
        assert staff.get(path).status_code == 200, path


def test_the_user_change_page_does_not_query_per_permission(staff, make_user):
    user = make_user()
    with CaptureQueriesContext(connection) as context:
        response = staff.get(f"/admin/accounts/user/{user.pk}/change/")
    assert response.status_code == 200
    # Session, user, groups, permissions: a handful, however many permissions exist.
    assert len(context.captured_queries) <= 10, [query["sql"][:80] for query in context.captured_queries]


def test_users_are_found_by_exact_email(staff, make_user):
    make_user(email="findme@example.com", name="Findable")
    make_user(email="other@example.com", name="Hidden")
    page = staff.get("/admin/accounts/user/", {"q": "FindMe@Example.com"}).content.decode()
    assert "findme@example.com" in page
    assert "other@example.com" not in page


def test_tokens_and_key_hashes_never_reach_the_admin(staff, make_user):
    populate(make_user, 1)
    token = ApiToken.objects.get()
    key = ApiKey.objects.first()
    pages = [
        staff.get("/admin/tokens/apitoken/").content.decode(),
        staff.get(f"/admin/tokens/apitoken/{token.pk}/change/").content.decode(),
        staff.get("/admin/accounts/apikey/").content.decode(),
        staff.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode(),
    ]
    for page in pages:
        assert "secret-token-value" not in page
        assert key.key_hash not in page


def test_staff_can_create_a_user(staff):
    response = staff.post(
        "/admin/accounts/user/add/",
        {
            "email": "Made@Example.com",
            "name": "Made In Admin",
            "role": "member",
            "password1": "a-long-enough-password-9",
            "password2": "a-long-enough-password-9",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    made = User.objects.get_by_email("made@example.com")
    assert made.name == "Made In Admin"
    assert made.check_password("a-long-enough-password-9")


def test_members_cannot_use_the_admin(make_user):
    member = make_user()
    client = Client()
    client.force_login(member)
    assert client.get("/admin/").status_code == 302


def test_the_admin_sign_in_form_is_rate_limited(client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "3/min"}}
    assert client.get("/admin/login/").status_code == 200  # showing the form costs nothing
    attempts = [
        client.post("/admin/login/", {"username": "staff@example.com", "password": "guess"}).status_code
        for _ in range(4)
    ]
    assert attempts == [200, 200, 200, 429]
    assert client.get("/admin/login/").status_code == 200


def test_a_flow_version_shows_its_graph_and_links_to_its_runs(staff, make_user):
    populate(make_user, 1)
    execution = FlowExecution.objects.get()
    page = staff.get(f"/admin/flows/flowversion/{execution.flow_version_id}/change/")
    assert page.status_code == 200
    assert b"<svg" in page.content
    listed = staff.get("/admin/flows/flowversion/")
    runs_link = f"/admin/executions/flowexecution/?flow_version__id__exact={execution.flow_version_id}"
    assert runs_link.encode() in listed.content.replace(b"&amp;", b"&")
    runs = staff.get(runs_link)
    assert runs.status_code == 200
    assert f"/admin/executions/flowexecution/{execution.pk}/change/".encode() in runs.content
