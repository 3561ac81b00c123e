"""`/webhooks/meta/`: handshake, signatures, durable intake; processing in-process."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from executions.models import FlowExecution
from tokens import services, webhooks
from tokens.models import ApiToken, ContactWindow, MetaWebhookDelivery
from tokens.tests.meta import (
    IG_ACCOUNT,
    PAGE_ID,
    comment_payload,
    connect,
    make_flow,
    message_payload,
    post_signed,
)

pytestmark = pytest.mark.django_db

REPLY = {"id": "a", "type": "instagram.private_reply", "config": {"text": "Hi {{ trigger.username }}!"}}
DM = {"id": "a", "type": "instagram.send_message", "config": {"text": "Thanks!"}}


@pytest.fixture
def client():
    return Client()


def handshake(client, **params):
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", **params}
    return client.get("/webhooks/meta/", query)


def test_the_handshake_echoes_the_challenge_only_for_the_right_verify_token(client, settings):
    ok = handshake(client, **{"hub.verify_token": settings.META_VERIFY_TOKEN})
    assert ok.status_code == 200
    assert ok.content == b"1158201444"
    assert ok["Content-Type"].startswith("text/plain")

    assert handshake(client, **{"hub.verify_token": "wrong-token"}).status_code == 403
    assert handshake(client).status_code == 403
    assert (
        handshake(client, **{"hub.verify_token": settings.META_VERIFY_TOKEN, "hub.mode": "unsubscribe"}).status_code
        == 403
    )
    bad_challenge = handshake(client, **{"hub.verify_token": settings.META_VERIFY_TOKEN, "hub.challenge": "<script>"})
    assert bad_challenge.status_code == 400


@pytest.mark.parametrize("signature", ["", "sha256=" + "0" * 64, "sha1=abc", "garbage"])
def test_a_missing_or_wrong_signature_is_403_and_stores_nothing(client, signature):
    response = post_signed(client, comment_payload(), signature=signature)
    assert response.status_code == 403
    assert response.json()["code"] == "invalid_signature"
    assert MetaWebhookDelivery.objects.count() == 0


def test_a_signature_over_a_different_body_is_refused(client):
    body = json.dumps(comment_payload("price")).encode()
    from tokens.webhooks import expected_signature

    tampered = body.replace(b"price", b"PRICE")
    response = post_signed(client, tampered, signature=expected_signature(body))
    assert response.status_code == 403
    assert MetaWebhookDelivery.objects.count() == 0


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"[1, 2]", b'{"object": "instagram"}', b'{"entry": [{"id": "1\\u0000"}]}']
)
def test_signed_malformed_bodies_are_400(client, body):
    response = post_signed(client, body)
    assert response.status_code == 400
    assert response.json()["detail"]
    assert MetaWebhookDelivery.objects.count() == 0


def test_a_signed_delivery_is_stored_before_the_answer(client):
    payload = comment_payload("price")
    response = post_signed(client, payload)
    assert response.status_code == 200
    delivery = MetaWebhookDelivery.objects.get()
    assert delivery.payload == payload
    assert delivery.object == "instagram"
    assert delivery.processed_at is None
    assert delivery.attempts == 0


def test_bodies_postgresql_cannot_store_are_400_not_500(client):
    response = post_signed(client, b'{"object": "instagram", "entry": [{"id": "1", "text": "\\ud800"}]}')
    assert response.status_code == 400
    assert MetaWebhookDelivery.objects.count() == 0


def test_objects_we_do_not_subscribe_to_are_acknowledged_and_dropped(client):
    response = post_signed(client, {"object": "permissions", "entry": [{"id": "1"}]})
    assert response.status_code == 200
    assert response.json() == {"status": "ignored"}
    assert MetaWebhookDelivery.objects.count() == 0


def test_other_methods_are_405(client):
    assert client.put("/webhooks/meta/").status_code == 405


def test_the_rate_limit_answers_429_without_storing(client, settings, monkeypatch):
    settings.META_WEBHOOK_RATE_LIMIT = 2
    monkeypatch.setattr(webhooks, "_window", webhooks.MinuteWindow(clock=lambda: 600.0))
    codes = [post_signed(client, comment_payload()).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert MetaWebhookDelivery.objects.count() == 2


# --- processing (what the Celery task does), in-process ----------------------------------


def receive(client, payload) -> MetaWebhookDelivery:
    assert post_signed(client, payload).status_code == 200
    return MetaWebhookDelivery.objects.latest("id")


def test_a_matching_comment_starts_one_execution_per_matching_flow(client, user):
    connect(user)
    price = make_flow(user, {"type": "instagram.comment", "config": {"keywords": ["price"]}}, [REPLY])
    everything = make_flow(user, {"type": "instagram.comment", "config": {}}, [REPLY])
    make_flow(user, {"type": "instagram.comment", "config": {"keywords": ["refund"]}}, [REPLY])
    make_flow(user, {"type": "instagram.comment", "config": {}}, [REPLY], status="paused")
    make_flow(user, {"type": "instagram.message", "config": {}}, [DM])

    delivery = receive(client, comment_payload("What's the price?", comment_id="1791"))
    assert services.process_delivery(delivery.pk) == 2

    executions = FlowExecution.objects.order_by("flow_id")
    assert [e.flow_id for e in executions] == [price.pk, everything.pk]
    assert {e.trigger_type for e in executions} == {"instagram.comment"}
    assert {e.dedup_key for e in executions} == {"comment:1791"}
    trigger = executions[0].trigger_data
    assert (trigger["text"], trigger["username"], trigger["from_id"], trigger["comment_id"]) == (
        "What's the price?",
        "jane.doe",
        "5550001",
        "1791",
    )
    assert (trigger["media_id"], trigger["account_id"], trigger["provider"]) == (
        "18000000000000001",
        IG_ACCOUNT,
        "instagram",
    )
    delivery.refresh_from_db()
    assert delivery.processed_at is not None
    assert delivery.executions_started == 2
    assert services.process_delivery(delivery.pk) is None  # processed already


def test_the_same_event_delivered_three_times_makes_one_execution(client, user):
    connect(user)
    make_flow(user, {"type": "instagram.comment", "config": {"keywords": ["price"]}}, [REPLY])
    payload = comment_payload("price", comment_id="1792")
    deliveries = [receive(client, payload) for _ in range(3)]
    started = [services.process_delivery(d.pk) for d in deliveries]
    assert started == [1, 0, 0]
    assert FlowExecution.objects.count() == 1
    assert MetaWebhookDelivery.objects.filter(processed_at__isnull=False).count() == 3


def test_only_the_account_owners_flows_run(client, user, other_user):
    connect(user)
    make_flow(other_user, {"type": "instagram.comment", "config": {}}, [REPLY])
    services.process_delivery(receive(client, comment_payload("price")).pk)
    assert FlowExecution.objects.count() == 0


def test_an_unknown_account_is_logged_without_personal_data_and_ignored(client, user, caplog):
    make_flow(user, {"type": "instagram.comment", "config": {}}, [REPLY])
    delivery = receive(client, comment_payload("my secret text", username="secret.user", account_id="999"))
    with caplog.at_level(logging.INFO, logger="tokens"):
        assert services.process_delivery(delivery.pk) == 0
    assert "unknown account 999" in caplog.text
    assert "secret" not in caplog.text
    assert FlowExecution.objects.count() == 0


def test_a_revoked_token_routes_nothing(client, user):
    connect(user, status=ApiToken.Status.REVOKED)
    make_flow(user, {"type": "instagram.comment", "config": {}}, [REPLY])
    services.process_delivery(receive(client, comment_payload("price")).pk)
    assert FlowExecution.objects.count() == 0


def test_messages_open_the_window_echoes_do_not_trigger(client, user):
    token = connect(user)
    page = connect(user, provider="facebook", account_id=PAGE_ID, raw_token="EAAG-page-token-0123456789")
    make_flow(user, {"type": "instagram.message", "config": {"keywords": ["menu"]}}, [DM])
    make_flow(
        user,
        {"type": "messenger.message", "config": {}},
        [{"id": "a", "type": "messenger.send_message", "config": {"text": "hi"}}],
    )
    an_hour_ago = int((timezone.now() - timedelta(hours=1)).timestamp() * 1000)
    services.process_delivery(receive(client, message_payload("the menu please", timestamp_ms=an_hour_ago)).pk)
    services.process_delivery(receive(client, message_payload("menu", echo=True)).pk)
    services.process_delivery(receive(client, message_payload("hi", account_id=PAGE_ID, meta_object="page")).pk)

    assert sorted(FlowExecution.objects.values_list("trigger_type", flat=True)) == [
        "instagram.message",
        "messenger.message",
    ]
    window = ContactWindow.objects.get(token=token, contact_id="6660001")
    assert abs((window.last_inbound_at - (timezone.now() - timedelta(hours=1))).total_seconds()) < 60
    assert ContactWindow.objects.filter(token=page).count() == 1
    # An older message arriving late does not move the window back.
    two_hours_ago = int((timezone.now() - timedelta(hours=2)).timestamp() * 1000)
    services.process_delivery(receive(client, message_payload("old", timestamp_ms=two_hours_ago)).pk)
    assert ContactWindow.objects.get(token=token, contact_id="6660001").last_inbound_at == window.last_inbound_at


def test_processing_queries_do_not_grow_with_the_number_of_events(client, user):
    from executions import runner

    connect(user)
    make_flow(user, {"type": "instagram.comment", "config": {"keywords": ["nomatch"]}}, [REPLY])
    runner.disabled_node_types()  # the switched-off types, read once per process every few seconds

    def queries_for(n: int) -> int:
        payload = comment_payload("price")
        payload["entry"] = payload["entry"] * n
        delivery = receive(client, payload)
        with CaptureQueriesContext(connection) as captured:
            services.process_delivery(delivery.pk)
        return len(captured.captured_queries)

    assert queries_for(1) == queries_for(20)


def test_pending_deliveries_are_processed_in_order_and_a_failing_one_is_set_aside(client, user, monkeypatch, settings):
    settings.META_WEBHOOK_MAX_ATTEMPTS = 2
    connect(user)
    make_flow(user, {"type": "instagram.comment", "config": {}}, [REPLY])
    good = [receive(client, comment_payload("price")) for _ in range(3)]
    bad = receive(client, comment_payload("this one breaks"))
    real_parse = services.events.parse

    def parse(payload):
        if "breaks" in json.dumps(payload):
            raise RuntimeError("a bug")
        return real_parse(payload)

    monkeypatch.setattr(services.events, "parse", parse)
    assert services.process_pending_deliveries(30, batch_size=2) == (3, False)
    assert FlowExecution.objects.count() == 3
    assert all(d.pk < bad.pk for d in good)
    bad.refresh_from_db()
    assert (bad.processed_at, bad.attempts) == (None, 1)
    assert bad.last_error.startswith("RuntimeError at ")
    assert MetaWebhookDelivery.objects.pending().get() == bad

    services.process_pending_deliveries(30)  # the sweeper's next nudge: the last attempt
    assert not MetaWebhookDelivery.objects.pending().exists()  # given up, visible in the admin


@pytest.mark.parametrize(
    ("trigger_type", "payload"),
    [
        ("instagram.comment", lambda: comment_payload("price")),
        ("instagram.message", lambda: message_payload("hello")),
        (
            "instagram.story_mention",
            lambda: message_payload(None, attachments=[{"type": "story_mention", "payload": {"url": "https://x"}}]),
        ),
        ("messenger.message", lambda: message_payload("hello", account_id=PAGE_ID, meta_object="page")),
    ],
)
def test_a_trigger_type_staff_switched_off_starts_nothing(client, user, monkeypatch, caplog, trigger_type, payload):
    from executions import runner
    from flows.models import NodeType

    token = connect(user)
    connect(user, provider="facebook", account_id=PAGE_ID, raw_token="EAAG-page-token-0123456789")
    for _ in range(2):
        make_flow(user, {"type": trigger_type, "config": {}}, [])
    other = "instagram.message" if trigger_type == "instagram.comment" else "instagram.comment"
    still_on = make_flow(user, {"type": other, "config": {}}, [])
    NodeType.objects.filter(type=trigger_type).update(enabled=False)
    monkeypatch.setattr(runner, "_disabled_cache", (0.0, frozenset()))  # forget the cached list now

    event = payload()
    event["entry"] = event["entry"] * 3  # three events of the switched-off type in one delivery
    delivery = receive(client, event)
    with caplog.at_level(logging.INFO, logger="tokens"):
        assert services.process_delivery(delivery.pk) == 0

    assert not FlowExecution.objects.exists()
    [line] = [r.getMessage() for r in caplog.records if "switched off" in r.getMessage()]  # once per delivery
    assert line == f"meta delivery {delivery.pk}: 3 {trigger_type} event(s) ignored, trigger type switched off"
    if trigger_type != "instagram.comment":  # the person did write: the 24 h window still opens
        assert ContactWindow.objects.exists()
    # Other trigger types keep working.
    other_payload = comment_payload("price") if other == "instagram.comment" else message_payload("hi")
    assert services.process_delivery(receive(client, other_payload).pk) == 1
    assert FlowExecution.objects.get().flow_id == still_on.pk
    assert token.account_id == IG_ACCOUNT
