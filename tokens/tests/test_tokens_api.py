"""`/api/v1/tokens/`: connecting accounts, with Meta asked whose each token is (a fake Graph API)."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.test import Client

from core.testing import FakeHTTPServer, Reply
from executions.models import FlowExecution
from tokens import services
from tokens.models import ApiToken, MetaWebhookDelivery
from tokens.tests.meta import (
    PAGE_ID,
    FakeGraph,
    comment_payload,
    fake_graph,
    graph_path,
    make_flow,
    meta_error,
    post_signed,
)

pytestmark = pytest.mark.django_db

ACCOUNT = "17841400000000001"
RAW_TOKEN = "IGQVJ-secret-access-token-value-1234567890"
NEW_TOKEN = "IGQVJ-another-token-value-0000000000"
SQUATTER_TOKEN = "IGQVJ-squatters-own-token-value-5555555555"
SQUATTER_ACCOUNT = "17841400000000555"
PAGE_TOKEN = "EAAG-page-token-value-abcdefghijkl"


@pytest.fixture
def meta(settings):
    with fake_graph(settings) as server:
        server.owns(RAW_TOKEN, ACCOUNT, "acme.shop")
        server.owns(NEW_TOKEN, ACCOUNT, "acme.shop")
        server.owns(SQUATTER_TOKEN, SQUATTER_ACCOUNT, "squatter")
        server.owns(PAGE_TOKEN, PAGE_ID, "Acme Page")
        yield server


def connect(client, **overrides):
    payload = {"provider": "instagram", "account_id": ACCOUNT, "access_token": RAW_TOKEN} | overrides
    return client.post("/api/v1/tokens/", payload, format="json")


def me_requests(server: FakeHTTPServer):
    return server.received("GET", graph_path("me"))


def test_the_token_is_verified_with_meta_then_stored_write_only_and_encrypted(api, meta):
    response = connect(api)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "access_token" not in body
    assert (body["token_hint"], body["account_name"]) == ("…7890", "acme.shop")
    assert RAW_TOKEN not in response.content.decode()

    [asked] = me_requests(meta)
    assert asked.query == {"fields": ["user_id,username"]}
    assert asked.headers["authorization"] == f"Bearer {RAW_TOKEN}"

    listed = api.get("/api/v1/tokens/")
    assert RAW_TOKEN not in listed.content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM api_tokens")
        assert RAW_TOKEN.encode() not in bytes(cursor.fetchone()[0])
    assert ApiToken.objects.get().access_token == RAW_TOKEN


def test_instagram_tokens_are_verified_on_the_instagram_host_and_page_tokens_on_facebooks(api, settings):
    with FakeGraph() as instagram, FakeGraph() as facebook:
        settings.META_INSTAGRAM_GRAPH_URL, settings.META_GRAPH_URL = instagram.url, facebook.url
        instagram.owns(RAW_TOKEN, ACCOUNT)
        facebook.owns(PAGE_TOKEN, PAGE_ID, "Acme Page")

        assert connect(api).status_code == 201
        page = connect(api, provider="facebook", account_id=PAGE_ID, access_token=PAGE_TOKEN)

    assert page.status_code == 201, page.json()
    assert page.json()["account_name"] == "Acme Page"
    [asked] = me_requests(facebook)
    assert asked.query == {"fields": ["id,name"]}
    assert len(me_requests(instagram)) == 1


def test_reconnecting_verifies_and_replaces_the_token(api, meta):
    assert connect(api).status_code == 201
    again = connect(api, access_token=NEW_TOKEN)
    assert again.status_code == 200
    assert ApiToken.objects.get().access_token == NEW_TOKEN

    # A reconnection is verified like a first connection: a token for another account
    # leaves the one that works in place.
    wrong = connect(api, access_token=SQUATTER_TOKEN)
    assert wrong.status_code == 400
    assert ApiToken.objects.get().access_token == NEW_TOKEN
    assert len(me_requests(meta)) == 3


def test_a_token_of_another_account_is_a_400_and_stores_nothing(api, meta):
    response = connect(api, access_token=SQUATTER_TOKEN)
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {"access_token": [f"This access token does not belong to Instagram account {ACCOUNT}."]}
    assert SQUATTER_ACCOUNT not in response.content.decode()  # whose it is stays Meta's to tell
    assert "squatter" not in response.content.decode()
    assert not ApiToken.objects.exists()


def test_squatting_another_business_account_id_fails(api, client_for, other_user, meta, user):
    """B claims A's (public) account id with a token of B's own account: before and after A connects."""
    squatter = client_for(other_user)
    early = connect(squatter, access_token=SQUATTER_TOKEN)
    assert early.status_code == 400
    assert "does not belong to Instagram account" in early.json()["detail"]
    assert not ApiToken.objects.exists()

    assert connect(api).status_code == 201  # the real owner is not locked out
    late = connect(squatter, access_token=SQUATTER_TOKEN)
    assert late.status_code == 400
    assert "another Inflow user" not in late.json()["detail"]  # no hint that A connected it
    garbage = connect(squatter, access_token="IGQVJ-made-up-garbage-token-000000")
    assert garbage.status_code == 400
    assert garbage.json()["detail"].startswith("access_token: Meta refused this access token")
    assert ApiToken.objects.get().user_id == user.pk
    assert ApiToken.objects.get().access_token == RAW_TOKEN

    # A's customers stay A's: a comment on A's account runs A's flow, never B's.
    theirs = make_flow(user, {"type": "instagram.comment", "config": {}}, [])
    make_flow(other_user, {"type": "instagram.comment", "config": {}}, [])
    assert post_signed(Client(), comment_payload(account_id=ACCOUNT)).status_code == 200
    assert services.process_delivery(MetaWebhookDelivery.objects.get().pk) == 1
    assert FlowExecution.objects.get().flow_id == theirs.pk


def test_another_users_token_is_invisible(api, client_for, other_user, meta):
    token_id = connect(api).json()["id"]
    stranger = client_for(other_user)
    assert stranger.get(f"/api/v1/tokens/{token_id}/").status_code == 404
    assert stranger.delete(f"/api/v1/tokens/{token_id}/").status_code == 404
    assert stranger.get("/api/v1/tokens/").json()["count"] == 0
    # Only someone holding a valid token for the account learns it is connected already.
    taken = connect(stranger, access_token=NEW_TOKEN)
    assert taken.status_code == 400
    assert taken.json()["errors"] == {"account_id": ["This account is connected to another Inflow user."]}
    assert ApiToken.objects.get().user_id != other_user.id


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (
            meta_error(190, message="Error validating access token: Session has expired"),
            "Meta error 190: Error validating access token: Session has expired",
        ),
        (meta_error(10, status=403, message="Application does not have permission"), "Meta error 10: Application"),
        (Reply(401, b"Unauthorized"), "HTTP 401"),
    ],
)
def test_a_token_meta_refuses_is_a_400_and_stores_nothing(api, meta, answer, detail):
    meta.responder = lambda request: answer
    response = connect(api)
    assert response.status_code == 400
    [message] = response.json()["errors"]["access_token"]
    assert message.startswith(f"Meta refused this access token: {detail}")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("answer", "status", "retry_after"),
    [
        (Reply(500, {"error": {"message": "An unknown error occurred", "code": 1}}), 503, None),
        (Reply(503, b"<html>Service Unavailable</html>"), 503, None),
        (Reply(400, {"error": {"message": "Please retry", "code": 2, "is_transient": True}}), 503, None),
        (
            Reply(400, {"error": {"message": "Application request limit reached", "code": 4}}, {"Retry-After": "120"}),
            503,
            "120",
        ),
        (Reply(429, {}, {"Retry-After": "30"}), 503, "30"),
        (Reply(200, {"username": "no id"}), 502, None),
        (Reply(404, b"Not Found"), 502, None),
    ],
)
def test_meta_unable_to_answer_is_a_503_or_502_and_stores_nothing(api, meta, answer, status, retry_after):
    meta.responder = lambda request: answer
    response = connect(api)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == "meta_unavailable"
    assert body["detail"].startswith("Could not verify the token with Meta; try again.")
    assert response.headers.get("Retry-After") == retry_after
    assert not ApiToken.objects.exists()


def test_meta_unreachable_or_too_slow_is_a_503(api, settings):
    with FakeGraph() as gone:
        url = gone.url
    settings.META_INSTAGRAM_GRAPH_URL = url  # nothing listens there any more
    unreachable = connect(api)
    assert unreachable.status_code == 503
    assert "ConnectError" in unreachable.json()["detail"]

    settings.META_HTTP_TIMEOUT = 0.2
    with FakeHTTPServer(lambda request: Reply(200, {"user_id": ACCOUNT}, delay=1)) as slow:
        settings.META_INSTAGRAM_GRAPH_URL = slow.url
        assert connect(api).status_code == 503
    assert not ApiToken.objects.exists()


def test_the_token_never_reaches_the_logs(api, meta, caplog):
    with caplog.at_level(logging.DEBUG):
        assert connect(api).status_code == 201
        assert connect(api, access_token=SQUATTER_TOKEN).status_code == 400
        meta.responder = lambda request: meta_error(190, message="Invalid OAuth access token")
        assert connect(api, access_token=NEW_TOKEN).status_code == 400
    assert "HTTP Request: GET" in caplog.text  # httpx logs the URL, which carries no token
    for token in (RAW_TOKEN, SQUATTER_TOKEN, NEW_TOKEN):
        assert token not in caplog.text


def test_bad_token_payloads_never_reach_meta(api, meta):
    assert connect(api, provider="myspace").status_code == 400
    assert connect(api, account_id="12ab").status_code == 400
    assert connect(api, account_id="\u0661\u0662\u0663").status_code == 400  # Arabic-Indic digits
    assert connect(api, account_id="123\n").status_code == 400
    assert connect(api, access_token="").status_code == 400
    assert connect(api, access_token="IGQVJ-tokén-with-an-accent-0000").status_code == 400
    assert connect(api, access_token="IGQVJ-token-with\na-newline-0000").status_code == 400
    assert connect(api, access_token=RAW_TOKEN + " ").status_code == 400
    assert connect(api, scopes="not-a-list").status_code == 400
    assert not ApiToken.objects.exists()
    assert meta.requests == []


def test_delete(api, meta):
    token_id = connect(api).json()["id"]
    assert api.delete(f"/api/v1/tokens/{token_id}/").status_code == 204
    assert not ApiToken.objects.exists()


def test_connecting_is_rate_limited_per_user_and_listing_is_not(api, client_for, other_user, meta, monkeypatch):
    from core.ratelimit import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "connect", "2/min")
    codes = [connect(api).status_code for _ in range(3)]
    assert codes == [201, 200, 429]
    assert len(me_requests(meta)) == 2  # the refused one never reached Meta
    assert api.get("/api/v1/tokens/").status_code == 200
    assert (
        connect(client_for(other_user), access_token=PAGE_TOKEN, provider="facebook", account_id=PAGE_ID).status_code
        == 201
    )
