"""Refreshing long-lived Instagram tokens, and the housekeeping beat tasks."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from core.testing import FakeHTTPServer, Reply
from tokens.models import ApiToken, ContactWindow, MetaWebhookDelivery, PrivateReply
from tokens.tasks import purge_meta_data, refresh_instagram_tokens, sweep_meta_deliveries
from tokens.tests.meta import PAGE_ID, RAW_TOKEN, comment_payload, connect, message_payload, meta_error

pytestmark = pytest.mark.django_db

NEW_TOKEN = "IGQVJ-brand-new-refreshed-token-zyxwvu"


@pytest.fixture
def instagram(settings):
    with FakeHTTPServer(
        lambda r: Reply(200, {"access_token": NEW_TOKEN, "token_type": "bearer", "expires_in": 5184000})
    ) as server:
        settings.META_INSTAGRAM_GRAPH_URL = server.url
        yield server


def aged(user, *, age_days: float = 30, expires_in_days: float = 5, refreshed_days_ago: float | None = None, **fields):
    now = timezone.now()
    token = connect(
        user,
        account_id=fields.pop("account_id", "17841400000000009"),
        created_at=now - timedelta(days=age_days),
        expires_at=now + timedelta(days=expires_in_days),
        last_refreshed_at=None if refreshed_days_ago is None else now - timedelta(days=refreshed_days_ago),
        **fields,
    )
    return token


def test_due_tokens_are_refreshed_and_others_left_alone(instagram, user, caplog):
    due = aged(user, account_id="1")
    aged(user, account_id="2", expires_in_days=30)  # not expiring soon
    aged(user, account_id="3", age_days=0.5)  # younger than 24 h: Meta refuses
    aged(user, account_id="4", refreshed_days_ago=0.5)  # refreshed today
    aged(user, account_id="5", status=ApiToken.Status.REVOKED)
    connect(user, provider="facebook", account_id=PAGE_ID, expires_at=timezone.now() + timedelta(days=1))

    with caplog.at_level(logging.DEBUG):
        outcome = refresh_instagram_tokens()

    assert outcome == {"refreshed": 1, "failed": 0, "expired": 0, "skipped": 0}
    [request] = instagram.received("GET", "/refresh_access_token")
    assert request.query == {"grant_type": ["ig_refresh_token"], "access_token": [RAW_TOKEN]}
    due.refresh_from_db()
    assert due.access_token == NEW_TOKEN
    assert due.token_hint == "…xwvu"
    assert abs((due.expires_at - timezone.now()).total_seconds() - 5184000) < 60
    assert due.last_refreshed_at is not None
    # httpx logs the request URL, token included; every record is redacted as it is
    # created (core.logging), whatever handler then sees it.
    assert any("refresh_access_token" in r.getMessage() for r in caplog.records)
    assert all(NEW_TOKEN not in r.getMessage() and RAW_TOKEN not in r.getMessage() for r in caplog.records)
    assert RAW_TOKEN not in caplog.text
    assert refresh_instagram_tokens()["refreshed"] == 0  # refreshed today: not due again


def test_a_token_connected_without_an_expiry_is_refreshed_and_learns_it(instagram, user):
    token = aged(user)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=None)
    connect(user, account_id="17841400000000010", expires_at=None)  # younger than 24 h: not yet
    assert refresh_instagram_tokens()["refreshed"] == 1
    token.refresh_from_db()
    assert token.access_token == NEW_TOKEN
    assert abs((token.expires_at - timezone.now()).total_seconds() - 5184000) < 60
    assert len(instagram.received()) == 1


def test_a_refused_token_is_marked_expired(instagram, user):
    token = aged(user)
    instagram.responder = lambda r: meta_error(
        190, 400, "Error validating access token: The user has not authorized application."
    )
    assert refresh_instagram_tokens()["expired"] == 1
    token.refresh_from_db()
    assert token.status == ApiToken.Status.EXPIRED
    assert "not authorized application" in token.status_reason
    assert token.access_token == RAW_TOKEN


def test_a_failed_refresh_is_recorded_and_retried_later(instagram, user):
    token = aged(user)
    instagram.responder = lambda r: Reply(500, b"upstream down")
    assert refresh_instagram_tokens()["failed"] == 1
    token.refresh_from_db()
    assert token.status == ApiToken.Status.ACTIVE
    assert token.status_reason.startswith("Refresh failed at")
    assert "HTTP 500" in token.status_reason

    instagram.responder = lambda r: Reply(200, {"access_token": NEW_TOKEN, "expires_in": 5184000})
    assert refresh_instagram_tokens()["refreshed"] == 1
    token.refresh_from_db()
    assert token.status_reason == ""


def test_lapsed_tokens_are_marked_expired(instagram, user):
    token = aged(user, expires_in_days=-1)
    assert refresh_instagram_tokens()["expired"] == 1
    token.refresh_from_db()
    assert token.status == ApiToken.Status.EXPIRED
    assert "without a refresh" in token.status_reason
    assert instagram.received() == []


def test_purge_deletes_old_contact_data_only(user):
    token = connect(user)
    now = timezone.now()
    old, fresh = now - timedelta(days=10), now - timedelta(minutes=1)
    MetaWebhookDelivery.objects.create(object="instagram", payload=comment_payload(), received_at=old, processed_at=old)
    MetaWebhookDelivery.objects.create(object="instagram", payload=comment_payload(), received_at=old)  # not done
    MetaWebhookDelivery.objects.create(
        object="instagram", payload=comment_payload(), received_at=fresh, processed_at=fresh
    )
    ContactWindow.objects.create(token=token, contact_id="1", last_inbound_at=now - timedelta(hours=25))
    ContactWindow.objects.create(token=token, contact_id="2", last_inbound_at=fresh)
    PrivateReply.objects.create(token=token, comment_id="1", created_at=old)
    PrivateReply.objects.create(token=token, comment_id="2", created_at=fresh)

    assert purge_meta_data() == {"deliveries": 1, "contact_windows": 1, "private_replies": 1}
    assert MetaWebhookDelivery.objects.count() == 2
    assert list(ContactWindow.objects.values_list("contact_id", flat=True)) == ["2"]
    assert list(PrivateReply.objects.values_list("comment_id", flat=True)) == ["2"]


def test_sweep_counts_only_overdue_pending_deliveries(settings):
    settings.META_WEBHOOK_REQUEUE_SECONDS = 30
    now, old = timezone.now(), timezone.now() - timedelta(minutes=5)
    MetaWebhookDelivery.objects.create(object="instagram", payload={}, received_at=old)
    MetaWebhookDelivery.objects.create(object="instagram", payload={}, received_at=now)
    MetaWebhookDelivery.objects.create(object="instagram", payload={}, received_at=old, processed_at=now)
    MetaWebhookDelivery.objects.create(object="instagram", payload={}, received_at=old, attempts=5)
    assert sweep_meta_deliveries() == 1


def test_a_contacts_deliveries_can_be_found_for_erasure():
    MetaWebhookDelivery.objects.create(object="instagram", payload=comment_payload(from_id="42"))
    MetaWebhookDelivery.objects.create(object="instagram", payload=comment_payload(from_id="43"))
    MetaWebhookDelivery.objects.create(object="instagram", payload=message_payload(sender="42"))
    assert MetaWebhookDelivery.objects.mentioning("42").count() == 2
