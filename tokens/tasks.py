"""Celery tasks of the Meta integration: thin shells around tokens.services."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from functools import cache

import redis
from celery import shared_task
from django.conf import settings
from django.db.models import Q
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

PURGE_BATCH = 1000
REFRESH_BATCH = 500


# Set while a processing task is queued and has not started yet. The web tier publishes a
# Celery message only when it can set this flag, so a burst of deliveries costs one
# message, not one each; the task clears it as it starts, before it looks for work, so a
# delivery committed after that look sends a new nudge. The TTL bounds the damage of a
# message lost with the flag still set (the sweeper covers that case too).
NUDGE_KEY = "inflow:meta-webhooks:nudged"
NUDGE_TTL = 10
# A task hands over to a fresh one after this long, so one burst cannot hold a worker.
PROCESS_BUDGET_SECONDS = 30.0


@cache
def _redis(url: str) -> redis.Redis:
    # One client per process and URL. (Django's cache API builds a new client object for
    # every call, which costs more than the round trip on the webhook's hot path.)
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def nudge_flag() -> redis.Redis:
    return _redis(settings.REDIS_URL)


@shared_task(ignore_result=True, acks_late=True)
def process_meta_deliveries() -> int:
    with contextlib.suppress(redis.RedisError):  # the TTL clears it anyway
        nudge_flag().delete(NUDGE_KEY)
    processed, more = services.process_pending_deliveries(PROCESS_BUDGET_SECONDS)
    if more:
        nudge(force=True)
    return processed


def nudge(*, force: bool = False) -> None:
    """Ask a worker to process pending deliveries, unless a request is already queued.

    Never raises: the deliveries are safe in PostgreSQL and the sweeper nudges again.
    """
    try:
        if not nudge_flag().set(NUDGE_KEY, 1, nx=True, ex=NUDGE_TTL) and not force:
            return
    except redis.RedisError as exc:  # publish anyway (that will most likely fail too)
        logger.warning("meta webhooks: nudge flag unavailable (%s)", type(exc).__name__)
    try:
        process_meta_deliveries.apply_async(retry=False)
    except Exception as exc:  # kombu and redis raise a variety of connection errors
        logger.warning("meta webhooks: deliveries stored but no worker nudged (%s); the sweeper will", exc)
        with contextlib.suppress(redis.RedisError):  # the TTL clears it anyway
            nudge_flag().delete(NUDGE_KEY)


@shared_task(ignore_result=True)
def sweep_meta_deliveries() -> int:
    """Nudge a worker when deliveries wait longer than META_WEBHOOK_REQUEUE_SECONDS.

    Covers a lost Celery message (Redis flushed or restarted), a worker that died while
    processing (its transaction rolled back, so the delivery is pending again) and
    deliveries whose processing failed (retried up to META_WEBHOOK_MAX_ATTEMPTS).
    Returns how many deliveries were overdue.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.META_WEBHOOK_REQUEUE_SECONDS)
    overdue = MetaWebhookDelivery.objects.pending().filter(received_at__lte=cutoff).count()
    if overdue:
        logger.warning("meta sweeper: %d deliveries still pending; nudging a worker", overdue)
        nudge(force=True)
    return overdue


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
