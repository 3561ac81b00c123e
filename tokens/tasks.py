"""Celery tasks of the Meta integration: thin shells around tokens.services."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from tokens import services
from tokens.models import (
    MESSAGING_WINDOW,
    PRIVATE_REPLY_WINDOW,
    ApiToken,
    ContactWindow,
    MetaWebhookDelivery,
    PrivateReply,
)

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500
PURGE_BATCH = 1000
REFRESH_BATCH = 500


@shared_task(ignore_result=True, acks_late=True)
def process_meta_delivery(delivery_id: int) -> None:
    try:
        started = services.process_delivery(delivery_id)
    except Exception as exc:
        # The transaction rolled back; the sweeper tries again up to META_WEBHOOK_MAX_ATTEMPTS.
        # Only the type is recorded: an exception's text may quote message content.
        MetaWebhookDelivery.objects.filter(pk=delivery_id).update(
            attempts=F("attempts") + 1, last_error=f"{type(exc).__name__} at {timezone.now():%Y-%m-%d %H:%M:%S}"
        )
        logger.error("meta delivery %s failed: %s", delivery_id, type(exc).__name__)
        return
    if started:
        logger.info("meta delivery %s: %d execution(s) started", delivery_id, started)


def enqueue_delivery(delivery_id: int) -> None:
    """Nudge a worker. A failure here loses nothing: the row waits for the sweeper."""
    try:
        process_meta_delivery.apply_async((delivery_id,), retry=False)
    except Exception as exc:  # kombu and redis raise a variety of connection errors
        logger.warning("meta delivery %s stored but not enqueued (%s); the sweeper will", delivery_id, exc)


SWEEP_SQL = """
UPDATE meta_webhook_deliveries SET enqueued_at = now()
WHERE id IN (
    SELECT id FROM meta_webhook_deliveries
    WHERE processed_at IS NULL AND attempts < %s
      AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => %s))
    ORDER BY enqueued_at LIMIT %s FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


@shared_task(ignore_result=True)
def sweep_meta_deliveries() -> int:
    """Re-enqueue deliveries still unprocessed after META_WEBHOOK_REQUEUE_SECONDS.

    Covers a lost Celery message (Redis flushed or restarted) and a worker that died while
    processing (its transaction rolled back, so the row is unprocessed again).
    """
    with connection.cursor() as cursor:
        params = [settings.META_WEBHOOK_MAX_ATTEMPTS, settings.META_WEBHOOK_REQUEUE_SECONDS, SWEEP_BATCH]
        cursor.execute(SWEEP_SQL, params)
        ids = [row[0] for row in cursor.fetchall()]
    for delivery_id in ids:
        enqueue_delivery(delivery_id)
    if ids:
        logger.warning("meta sweeper: re-enqueued %d unprocessed deliveries", len(ids))
    return len(ids)


def _delete_in_batches(queryset) -> int:
    deleted_total = 0
    model = queryset.model
    while True:
        ids = list(queryset.values_list("id", flat=True)[:PURGE_BATCH])
        if not ids:
            return deleted_total
        deleted, _ = model.objects.filter(id__in=ids).delete()
        deleted_total += deleted


@shared_task
def purge_meta_data() -> dict:
    """Delete what the Meta integration no longer needs: it holds contacts' data.

    - deliveries processed (or given up) more than META_WEBHOOK_RETENTION_HOURS ago;
    - messaging windows that closed (older than 24 h: they allow nothing any more);
    - private-reply records past Meta's 7-day limit (plus a day of margin).
    """
    now = timezone.now()
    retention = now - timedelta(hours=settings.META_WEBHOOK_RETENTION_HOURS)
    finished = Q(processed_at__isnull=False) | Q(attempts__gte=settings.META_WEBHOOK_MAX_ATTEMPTS)
    closed_windows = ContactWindow.objects.filter(last_inbound_at__lt=now - MESSAGING_WINDOW)
    counts = {
        "deliveries": _delete_in_batches(MetaWebhookDelivery.objects.filter(finished, received_at__lt=retention)),
        "contact_windows": _delete_in_batches(closed_windows),
        "private_replies": _delete_in_batches(
            PrivateReply.objects.filter(created_at__lt=now - PRIVATE_REPLY_WINDOW - timedelta(days=1))
        ),
    }
    if any(counts.values()):
        logger.info("meta purge: %s", counts)
    return counts


@shared_task
def refresh_instagram_tokens() -> dict:
    """Refresh long-lived Instagram tokens before they expire (see ApiToken.due_for_refresh)."""
    expired = services.expire_lapsed_tokens()
    ids = list(ApiToken.objects.due_for_refresh().order_by("expires_at").values_list("id", flat=True)[:REFRESH_BATCH])
    outcomes: dict[str, int] = {"refreshed": 0, "failed": 0, "expired": 0, "skipped": 0}
    for token_id in ids:
        outcomes[services.refresh_token(token_id)] += 1
    outcomes["expired"] += expired
    if ids or expired:
        logger.info("token refresh: %s", outcomes)
    return outcomes
