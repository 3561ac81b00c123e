"""The Meta action nodes against a fake Graph API on 127.0.0.1 (handlers called directly)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.testing import FakeHTTPServer, Reply
from flows.nodes import NodeContext, PermanentError, TransientError
from tokens import nodes
from tokens.models import ApiToken, ContactWindow, PrivateReply
from tokens.tests.meta import IG_ACCOUNT, PAGE_ID, RAW_TOKEN, connect, graph_ok, graph_path, meta_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def graph(settings):
    server = FakeHTTPServer(graph_ok)
    with server:
        settings.META_GRAPH_URL = server.url
        settings.META_INSTAGRAM_GRAPH_URL = server.url
        yield server


def context(user, *, execution_id=1, node_id="a", **trigger) -> NodeContext:
    data = {"provider": "instagram", "account_id": IG_ACCOUNT, "from_id": "5550001", "comment_id": "1791", **trigger}
    return NodeContext(
        node_id=node_id,
        node_type="x",
        attempt=1,
        trigger=data,
        nodes={},
        vars={},
        execution_id=execution_id,
        flow_id=1,
        user_id=user.pk,
        time_left=30,
    )


def open_window(token, contact="5550001", ago=timedelta(minutes=5)):
    ContactWindow.objects.create(token=token, contact_id=contact, last_inbound_at=timezone.now() - ago)


def test_private_reply_posts_to_the_comment_with_the_token_in_the_header(graph, user):
    connect(user)
    result = nodes.instagram_private_reply({"text": "Hi jane!"}, context(user))

    [request] = graph.received("POST", graph_path(f"{IG_ACCOUNT}/messages"))
    assert request.json() == {"recipient": {"comment_id": "1791"}, "message": {"text": "Hi jane!"}}
    assert request.headers["authorization"] == f"Bearer {RAW_TOKEN}"
    assert RAW_TOKEN not in str(request.query)
    assert result.output["comment_id"] == "1791"
    assert result.output["message_id"].startswith("m_")
    assert RAW_TOKEN not in str(result.output)
    assert PrivateReply.objects.get().status == PrivateReply.Status.SENT


def test_only_one_private_reply_per_comment(graph, user):
    connect(user)
    nodes.instagram_private_reply({"text": "first"}, context(user, execution_id=1))
    with pytest.raises(PermanentError, match=r"already sent by execution 1.*one per comment"):
        nodes.instagram_private_reply({"text": "second"}, context(user, execution_id=2))
    assert len(graph.received("POST")) == 1


def test_a_refused_private_reply_releases_the_claim_for_a_retry(graph, user):
    connect(user)
    answers = iter([meta_error(613, message="Calls to this api have exceeded the rate limit."), None])
    graph.responder = lambda request: next(answers) or graph_ok(request)
    with pytest.raises(TransientError, match="rate limit"):
        nodes.instagram_private_reply({"text": "hi"}, context(user))
    assert not PrivateReply.objects.exists()
    nodes.instagram_private_reply({"text": "hi"}, context(user))  # the engine's retry
    assert PrivateReply.objects.get().status == PrivateReply.Status.SENT


def test_a_timeout_after_sending_keeps_the_claim_and_is_not_retried(graph, user, settings):
    settings.META_HTTP_TIMEOUT = 1
    connect(user)
    graph.responder = lambda request: Reply(200, {}, delay=2)
    with pytest.raises(PermanentError, match="may have gone through"):
        nodes.instagram_private_reply({"text": "hi"}, context(user))
    assert PrivateReply.objects.get().status == PrivateReply.Status.SENDING
    with pytest.raises(PermanentError, match="already sending"):
        nodes.instagram_private_reply({"text": "hi"}, context(user, execution_id=2))


def test_private_replies_to_comments_older_than_7_days_are_refused_before_calling(graph, user):
    connect(user)
    old = (timezone.now() - timedelta(days=8)).isoformat()
    with pytest.raises(PermanentError, match="older than 7 days"):
        nodes.instagram_private_reply({"text": "hi"}, context(user, timestamp=old))
    assert graph.received() == []


def test_a_dm_needs_the_24h_window(graph, user):
    token = connect(user)
    with pytest.raises(PermanentError, match="never written"):
        nodes.instagram_send_message({"text": "hi"}, context(user))
    open_window(token, ago=timedelta(hours=25))
    with pytest.raises(PermanentError, match="24 h messaging window"):
        nodes.instagram_send_message({"text": "hi"}, context(user))
    assert graph.received() == []

    ContactWindow.objects.all().delete()
    open_window(token)
    result = nodes.instagram_send_message({"text": "hi"}, context(user))
    [request] = graph.received("POST", graph_path(f"{IG_ACCOUNT}/messages"))
    assert request.json() == {"recipient": {"id": "5550001"}, "message": {"text": "hi"}}
    assert result.output["to"] == "5550001"


def test_messenger_sends_a_response(graph, user):
    page = connect(user, provider="facebook", account_id=PAGE_ID, raw_token="EAAG-page-token-0123456789")
    open_window(page)
    nodes.messenger_send_message({"text": "hello"}, context(user, provider="facebook", account_id=PAGE_ID))
    [request] = graph.received("POST", graph_path(f"{PAGE_ID}/messages"))
    assert request.json() == {
        "recipient": {"id": "5550001"},
        "messaging_type": "RESPONSE",
        "message": {"text": "hello"},
    }


def test_each_token_goes_to_the_host_that_accepts_it(user, settings):
    """Instagram User tokens work only on graph.instagram.com, Page tokens on graph.facebook.com."""
    with FakeHTTPServer(graph_ok) as instagram, FakeHTTPServer(graph_ok) as facebook:
        settings.META_INSTAGRAM_GRAPH_URL, settings.META_GRAPH_URL = instagram.url, facebook.url
        token = connect(user)
        open_window(token)
        page = connect(user, provider="facebook", account_id=PAGE_ID, raw_token="EAAG-page-token-0123456789")
        open_window(page)
        nodes.instagram_private_reply({"text": "hi"}, context(user))
        nodes.instagram_send_message({"text": "hi"}, context(user))
        nodes.instagram_reply_comment({"text": "hi"}, context(user))
        nodes.messenger_send_message({"text": "hi"}, context(user, provider="facebook", account_id=PAGE_ID))

    assert [r.path for r in instagram.received("POST")] == [
        graph_path(f"{IG_ACCOUNT}/messages"),
        graph_path(f"{IG_ACCOUNT}/messages"),
        graph_path("1791/replies"),
    ]
    assert [r.path for r in facebook.received("POST")] == [graph_path(f"{PAGE_ID}/messages")]


def test_public_reply(graph, user):
    connect(user)
    result = nodes.instagram_reply_comment({"text": "Check your DMs!"}, context(user))
    [request] = graph.received("POST", graph_path("1791/replies"))
    assert request.json() == {"message": "Check your DMs!"}
    assert result.output["reply_id"]


def test_an_expired_token_fails_clearly_and_is_marked(graph, user):
    token = connect(user)
    graph.responder = lambda request: meta_error(190, 401, "Error validating access token: Session has expired.")
    with pytest.raises(PermanentError) as failure:
        nodes.instagram_reply_comment({"text": "hi"}, context(user))
    message = str(failure.value)
    assert f"The Instagram token for account {IG_ACCOUNT} has expired or was revoked; reconnect it." in message
    assert RAW_TOKEN not in message
    token.refresh_from_db()
    assert token.status == ApiToken.Status.EXPIRED
    assert "Session has expired" in token.status_reason
    # The next step does not even call Meta.
    with pytest.raises(PermanentError, match="is expired"):
        nodes.instagram_reply_comment({"text": "hi"}, context(user))
    assert len(graph.received()) == 1


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (meta_error(4, message="Application request limit reached"), TransientError, "rate limit"),
        (meta_error(80002, message="too many calls"), TransientError, "rate limit"),
        (Reply(429, {}), TransientError, "rate limit"),
        (Reply(503, b"oops"), TransientError, "temporarily unavailable"),
        (meta_error(2, 500, "Service temporarily unavailable"), TransientError, "temporarily unavailable"),
        (meta_error(1200, 400, "Temporary send message failure"), TransientError, "temporarily unavailable"),
        (meta_error(10, 403, "Application does not have permission"), PermanentError, "permission"),
        (meta_error(100, message="Invalid parameter"), PermanentError, "Meta error 100: Invalid parameter"),
    ],
)
def test_meta_errors_map_to_retry_or_failure(graph, user, reply, error, match):
    connect(user)
    graph.responder = lambda request: reply
    with pytest.raises(error, match=match) as failure:
        nodes.instagram_reply_comment({"text": "hi"}, context(user))
    if error is PermanentError:
        assert not isinstance(failure.value, TransientError)
    assert ApiToken.objects.get().status == ApiToken.Status.ACTIVE


def test_rate_limits_carry_metas_wait_time(graph, user):
    connect(user)
    usage = '{"17841400000000001": [{"type": "instagram", "estimated_time_to_regain_access": 2}]}'
    graph.responder = lambda request: Reply(
        400, {"error": {"code": 80002, "message": "limit"}}, headers={"X-Business-Use-Case-Usage": usage}
    )
    with pytest.raises(TransientError) as failure:
        nodes.instagram_reply_comment({"text": "hi"}, context(user))
    assert failure.value.retry_after == 120


def test_an_unreachable_graph_api_is_transient(user, settings):
    settings.META_INSTAGRAM_GRAPH_URL = "http://127.0.0.1:9"  # discard port: connection refused
    connect(user)
    with pytest.raises(TransientError, match="Could not reach Meta"):
        nodes.instagram_reply_comment({"text": "hi"}, context(user))


def test_only_the_flow_owners_tokens_are_used(graph, user, other_user):
    connect(other_user)
    with pytest.raises(PermanentError, match=f"No Instagram account {IG_ACCOUNT} is connected"):
        nodes.instagram_reply_comment({"text": "hi"}, context(user))
    assert graph.received() == []


def test_without_account_id_the_owners_only_account_is_used(graph, user):
    connect(user)
    nodes.instagram_reply_comment({"text": "hi"}, context(user, account_id=None))
    assert len(graph.received()) == 1
    connect(user, account_id="17841400000000002")
    with pytest.raises(PermanentError, match="has 2 Instagram accounts"):
        nodes.instagram_reply_comment({"text": "hi"}, context(user, account_id=None))


@pytest.mark.parametrize(
    ("config", "trigger", "match"),
    [
        ({"text": "   "}, {}, "empty"),
        ({"text": "é" * 600}, {}, "1200 bytes"),
        ({"text": "hi"}, {"comment_id": None}, "no comment_id"),
        ({"text": "hi"}, {"provider": "facebook"}, "triggered by a Facebook event"),
    ],
)
def test_bad_input_fails_before_calling(graph, user, config, trigger, match):
    connect(user)
    with pytest.raises(PermanentError, match=match):
        nodes.instagram_private_reply(config, context(user, **trigger))
    assert graph.received() == []
