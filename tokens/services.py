"""The Meta integration's work that crosses tables or talks to Meta: connecting a token
(verified with Meta first), turning stored webhook deliveries into executions (tokens,
flows, executions), refreshing and expiring tokens.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from executions.runner import disabled_node_types
from executions.services import start_execution
from flows.models import Flow
from flows.nodes import PermanentError, TransientError
from tokens import events, graph
from tokens.models import ApiToken, MetaWebhookDelivery

logger = logging.getLogger(__name__)

ACCOUNT_KINDS = {ApiToken.Provider.INSTAGRAM: "Instagram account", ApiToken.Provider.FACEBOOK: "Facebook Page"}


class ConnectError(Exception):
    """A token that cannot be connected; the message (and `field`) are the client's 400."""

    def __init__(self, message: str, *, field: str = "access_token") -> None:
        super().__init__(message)
        self.field = field


def connect_token(*, user, provider: str, account_id: str, raw_token: str, **fields) -> tuple[ApiToken, bool]:
    """Connect an account, or give an account the caller connected already a new token.

    Meta is asked whose the token is first: webhooks route `entry[].id` to the token's
    owner, so an unverified claim on an account id (which is public) would hand that
    business's comments and messages to whoever claimed it. The call is made before any
    transaction, so no lock is held while Meta answers; the unique (provider, account_id)
    constraint settles a race between two connections. Only a client holding a valid token
    for the account learns that another Inflow user connected it.

    Raises ConnectError (a 400) and graph.MetaUnavailableError (nothing is stored).
    Returns (token, created).
    """
    account = f"{ACCOUNT_KINDS[provider]} {account_id}"
    try:
        identity = graph.identify(provider, raw_token)
    except graph.TokenRefusedError as exc:
        raise ConnectError(f"Meta refused this access token: {exc}") from None
    if identity.account_id != account_id:
        # Which account the token does belong to is not the client's to learn from us.
        logger.info("token for %s refused: it belongs to another account (user %s)", account, user.pk)
        raise ConnectError(f"This access token does not belong to {account}.")
    existing = ApiToken.objects.without_secret().filter(provider=provider, account_id=account_id).first()
    if existing is not None and existing.user_id != user.pk:
        raise ConnectError("This account is connected to another Inflow user.", field="account_id")
    token = existing or ApiToken(user=user, provider=provider, account_id=account_id)
    for field, value in fields.items():
        setattr(token, field, value)
    token.account_name = identity.name
    token.set_token(raw_token)
    token.status, token.status_reason = ApiToken.Status.ACTIVE, ""
    try:
        with transaction.atomic():
            token.save()
    except IntegrityError:
        raise ConnectError("This account is already connected.", field="account_id") from None
    return token, existing is None


# GREATEST: Meta may deliver an older message after a newer one.
UPSERT_WINDOW_SQL = """
INSERT INTO meta_contact_windows (token_id, contact_id, last_inbound_at)
VALUES (%s, %s, %s)
ON CONFLICT (token_id, contact_id)
DO UPDATE SET last_inbound_at = GREATEST(meta_contact_windows.last_inbound_at, EXCLUDED.last_inbound_at)
"""


def record_inbound(token_id: int, contact_id: str, at: datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_WINDOW_SQL, [token_id, contact_id, at])


def active_flows(user_id: int, trigger_type: str) -> list[Flow]:
    """The user's active flows whose trigger node has this type.

    The containment filter is served by the flows.flow_data GIN (jsonb_path_ops) index; it
    also matches flows that merely contain such a node elsewhere, so the trigger is checked.
    """
    candidates = (
        Flow.objects.filter(user_id=user_id, status=Flow.Status.ACTIVE)
        .filter(flow_data__contains={"nodes": [{"type": trigger_type}]})
        .only("id", "user_id", "status", "flow_data")
        .order_by("id")
    )
    return [flow for flow in candidates if flow.trigger_type == trigger_type]


def process_delivery(delivery_id: int) -> int | None:
    """Start one execution per matching active flow for every event of a delivery.

    Runs in one transaction holding the delivery's row lock: executions, contact windows
    and the `processed_at` mark commit together, and a second worker given the same id
    skips the locked row. Returns the number of new executions, or None when the delivery
    was already processed or is being processed elsewhere.
    """
    with transaction.atomic():
        delivery = (
            MetaWebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(pk=delivery_id, processed_at__isnull=True)
            .first()
        )
        if delivery is None:
            return None
        started = _start_executions(events.parse(delivery.payload), delivery_id=delivery_id)
        MetaWebhookDelivery.objects.filter(pk=delivery_id).update(
            processed_at=timezone.now(), attempts=delivery.attempts + 1, last_error="", executions_started=started
        )
    return started


def record_failure(delivery_id: int, exc: Exception) -> None:
    # Only the type is kept: an exception's text may quote message content.
    MetaWebhookDelivery.objects.filter(pk=delivery_id).update(
        attempts=F("attempts") + 1, last_error=f"{type(exc).__name__} at {timezone.now():%Y-%m-%d %H:%M:%S}"
    )
    logger.error("meta delivery %s failed: %s", delivery_id, type(exc).__name__)


def process_pending_deliveries(budget_seconds: float, batch_size: int = 50) -> tuple[int, bool]:
    """Process pending deliveries in arrival order until none is left or the budget is spent.

    Several workers may run this at once: each delivery is taken under its row lock, and
    one that another worker holds is left to it. A delivery that fails is not tried again
    in the same run (the sweeper brings it back, up to META_WEBHOOK_MAX_ATTEMPTS).
    Returns (deliveries processed here, whether pending work was left over).
    """
    deadline = time.monotonic() + budget_seconds
    after_id = 0
    processed = 0
    while True:
        # Keyset pagination by id: each delivery is looked at once per run, whether it was
        # processed here, failed, or is held by another worker. One committed behind the
        # cursor has sent its own nudge, which starts a run from the beginning.
        batch = list(
            MetaWebhookDelivery.objects.pending()
            .filter(id__gt=after_id)
            .order_by("id")
            .values_list("id", flat=True)[:batch_size]
        )
        if not batch:
            return processed, False
        for delivery_id in batch:
            if time.monotonic() >= deadline:
                return processed, True
            after_id = delivery_id
            try:
                started = process_delivery(delivery_id)
            except Exception as exc:
                record_failure(delivery_id, exc)
                continue
            if started is not None:
                processed += 1
                if started:
                    logger.info("meta delivery %s: %d execution(s) started", delivery_id, started)


def _start_executions(parsed: list[events.Event], *, delivery_id: int | None = None) -> int:
    if not parsed:
        return 0
    # Trigger types staff switched off start nothing, like the flow webhook and schedule
    # triggers. Their events still open the contact's messaging window: the person did write.
    switched_off = disabled_node_types()
    skipped: defaultdict[str, int] = defaultdict(int)
    tokens = {
        (t.provider, t.account_id): t
        for t in ApiToken.objects.without_secret()
        # Both columns, so the (provider, account_id) unique index answers it.
        .filter(provider__in={e.provider for e in parsed}, account_id__in={e.account_id for e in parsed})
        .exclude(status=ApiToken.Status.REVOKED)
        .only("id", "user_id", "provider", "account_id", "status")
    }
    now = timezone.now()
    unknown: defaultdict[str, int] = defaultdict(int)
    routed: list[tuple[ApiToken, events.Event]] = []
    windows: dict[tuple[int, str], datetime] = {}
    for event in parsed:
        token = tokens.get((event.provider, event.account_id))
        if token is None:
            unknown[event.account_id] += 1
            continue
        routed.append((token, event))
        if event.opens_window:
            # Never trust a clock from the payload beyond our own.
            at = min(event.occurred_at or now, now)
            key = (token.id, event.contact_id)
            windows[key] = max(windows.get(key, at), at)
    # Meta re-batches its retries, so two workers may hold deliveries that share events in
    # a different order. Taking the locks (window rows, then dedup index entries) in one
    # sorted order makes the second worker wait for the first instead of deadlocking.
    for (token_id, contact_id), at in sorted(windows.items()):
        record_inbound(token_id, contact_id, at)
    flows_by_key: dict[tuple[int, str], list[Flow]] = {}
    started = 0
    for token, event in sorted(routed, key=lambda pair: pair[1].dedup_key):
        if event.trigger_type in switched_off:
            skipped[event.trigger_type] += 1
            continue
        key = (token.user_id, event.trigger_type)
        if key not in flows_by_key:
            flows_by_key[key] = active_flows(token.user_id, event.trigger_type)
        for flow in flows_by_key[key]:
            if not events.trigger_matches(flow.trigger.get("config") or {}, event):
                continue
            _, created = start_execution(
                flow=flow, trigger_type=event.trigger_type, trigger_data=event.data, dedup_key=event.dedup_key
            )
            started += created
    if skipped:
        logger.info(
            "meta delivery %s: %s ignored, trigger type switched off",
            delivery_id,
            ", ".join(f"{count} {trigger_type} event(s)" for trigger_type, count in sorted(skipped.items())),
        )
    for account_id, count in unknown.items():
        # Ids only: message text and usernames never reach the logs.
        logger.info("meta webhook: %d event(s) for unknown account %s ignored", count, account_id)
    return started


def refresh_token(token_id: int) -> str:
    """Refresh one long-lived Instagram token if it is (still) due. Returns the outcome.

    The row stays locked during the call, so two beat runs never refresh the same token
    twice; `skip_locked` makes the second one move on. Outcomes: "refreshed", "expired"
    (Meta refused the token: status `expired`), "failed" (kept `active` with the reason in
    `status_reason`, tried again on the next run) or "skipped".
    """
    now = timezone.now()
    with transaction.atomic():
        token = ApiToken.objects.due_for_refresh(now).select_for_update(skip_locked=True).filter(pk=token_id).first()
        if token is None:
            return "skipped"
        try:
            answer = graph.refresh_long_lived_token(token)
        except graph.TokenExpiredError:
            return "expired"  # already marked, with Meta's reason
        except (TransientError, graph.MaybeSentError, PermanentError) as exc:
            token.mark(ApiToken.Status.ACTIVE, f"Refresh failed at {now:%Y-%m-%d %H:%M} UTC: {exc} Will retry.")
            logger.warning("token %s: refresh failed (%s)", token.pk, type(exc).__name__)
            return "failed"
        token.set_token(answer["access_token"])
        expires_in = answer.get("expires_in")
        if isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0:
            token.expires_at = now + timedelta(seconds=expires_in)
        token.last_refreshed_at = now
        token.status, token.status_reason = ApiToken.Status.ACTIVE, ""
        token.save(
            update_fields=[
                "access_token",
                "token_hint",
                "expires_at",
                "last_refreshed_at",
                "status",
                "status_reason",
                "updated_at",
            ]
        )
    return "refreshed"


def expire_lapsed_tokens() -> int:
    """Tokens past their expiry are marked, so the admin and the API show why sends fail."""
    now = timezone.now()
    return ApiToken.objects.filter(status=ApiToken.Status.ACTIVE, expires_at__lte=now).update(
        status=ApiToken.Status.EXPIRED,
        status_reason=f"Expired at {now:%Y-%m-%d %H:%M} UTC without a refresh; reconnect the account.",
        updated_at=now,
    )
