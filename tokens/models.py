"""Connected Meta accounts and the small tables the Meta integration needs.

Where an end customer's ("contact's") data lives, for erasure (GDPR, issue 6). A contact is
identified per connected account by Meta's scoped id (IGSID for Instagram, PSID for
Messenger), e.g. `instagram:<sender id>`:
- `meta_webhook_deliveries.payload`: raw events (ids, usernames, message and comment text).
  Kept only META_WEBHOOK_RETENTION_HOURS after processing, then deleted by
  `tokens.tasks.purge_meta_data`. Erase a contact early with
  `MetaWebhookDelivery.objects.mentioning(contact_id).delete()`.
- `meta_contact_windows.contact_id`: when the contact last wrote to the account (24 h rule);
  rows older than the window are useless and purged.
- `meta_private_replies.contact_id`: private replies sent to the contact's comments (the
  one-per-comment rule); purged once Meta's 7-day limit has passed.
- `flow_executions.trigger_data` (executions app): the event that started each run, with
  `from_id`, `username`, `text`, `comment_id`, `message_id` (see tokens/events.py).
Deleting an `api_tokens` row cascades to its windows and private replies.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Q
from django.utils import timezone

from core.fields import EncryptedTextField
from tokens import events

# Meta's rules for messages a business sends (see tokens/nodes.py).
MESSAGING_WINDOW = timedelta(hours=24)
PRIVATE_REPLY_WINDOW = timedelta(days=7)


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def without_secret(self) -> ApiTokenQuerySet:
        """Never decrypt the token unless a Graph API call needs it."""
        return self.defer("access_token")

    def due_for_refresh(self, now=None) -> ApiTokenQuerySet:
        """Active long-lived Instagram tokens that expire soon and are at least 24 h old.

        Meta refuses to refresh a token younger than 24 h; an expired one cannot be refreshed.
        A token connected without `expires_at` is refreshed too: long-lived Instagram tokens
        last 60 days, and Meta's answer tells when the new one expires. Left alone, it would
        lapse without warning.
        """
        now = now or timezone.now()
        day_old = now - timedelta(hours=24)
        soon = now + timedelta(days=settings.META_TOKEN_REFRESH_WITHIN_DAYS)
        return self.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now, expires_at__lte=soon),
            provider=ApiToken.Provider.INSTAGRAM,
            status=ApiToken.Status.ACTIVE,
        ).filter(
            Q(last_refreshed_at__lte=day_old) | Q(last_refreshed_at__isnull=True, created_at__lte=day_old),
        )


class ApiToken(models.Model):
    """An Instagram or Facebook Page access token, encrypted at rest.

    `account_id` is the Instagram professional account id or the Page id: the id that
    arrives as `entry[].id` in webhooks and names the owner of the event. Meta confirms it
    belongs to the token before the token is stored (tokens.services.connect_token).
    """

    class Provider(models.TextChoices):
        INSTAGRAM = "instagram", "Instagram"
        FACEBOOK = "facebook", "Facebook"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    account_id = models.CharField(max_length=64)
    account_name = models.CharField(
        max_length=200, blank=True, help_text="The Instagram username or Page name, as Meta gave it at connection."
    )
    access_token = EncryptedTextField()
    token_hint = models.CharField(max_length=16, editable=False, help_text="Masked end of the token.")
    token_type = models.CharField(max_length=32, default="long_lived")
    scopes = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"
        constraints = [
            models.UniqueConstraint(fields=["provider", "account_id"], name="api_tokens_provider_account"),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.account_id}"

    @staticmethod
    def mask(raw_token: str) -> str:
        return "…" + raw_token[-4:] if len(raw_token) >= 12 else "…"

    def set_token(self, raw_token: str) -> None:
        self.access_token = raw_token
        self.token_hint = self.mask(raw_token)

    def mark(self, status: str, reason: str) -> None:
        """Record a status change without touching (or decrypting) the token column."""
        self.status, self.status_reason = status, reason[:500]
        ApiToken.objects.filter(pk=self.pk).update(
            status=status, status_reason=self.status_reason, updated_at=timezone.now()
        )


class DeliveryQuerySet(models.QuerySet["MetaWebhookDelivery"]):
    def pending(self) -> DeliveryQuerySet:
        """Not processed yet and not given up on (served by a small partial index)."""
        return self.filter(processed_at__isnull=True, attempts__lt=settings.META_WEBHOOK_MAX_ATTEMPTS)

    def mentioning(self, contact_id: str, *, as_recipient: bool = False) -> DeliveryQuerySet:
        """Deliveries that carry a contact's id where an event kind puts the person who acted
        (tokens/events.py), and with `as_recipient` where the account's echoed messages put
        the person they went to (for erasure)."""
        paths = events.contact_paths() + (events.ECHO_RECIPIENT_PATHS if as_recipient else ())
        query = Q()
        for path in paths:
            query |= Q(payload__contains=events.payload_containing(path, str(contact_id)))
        return self.filter(query)


STORE_SQL = """
INSERT INTO meta_webhook_deliveries (object, payload, received_at, attempts, last_error, executions_started)
VALUES (%s, %s::jsonb, now(), 0, '', 0) RETURNING id
"""


class MetaWebhookDelivery(models.Model):
    """One signed POST from Meta, stored before it is answered.

    PostgreSQL, not Redis, holds the event until it has been turned into executions. The
    Celery message that asks a worker to process pending deliveries is only a nudge: when it
    is lost, `sweep_meta_deliveries` nudges again for deliveries still pending after
    META_WEBHOOK_REQUEUE_SECONDS. Processing is idempotent (executions are deduplicated per
    flow by comment id / message mid), so a delivery processed twice, or Meta's retry of
    the same event, starts nothing new.
    """

    object = models.CharField(max_length=32, help_text="Meta's `object`: instagram or page.")
    payload = models.JSONField(help_text="The verified request body.")
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    executions_started = models.PositiveIntegerField(default=0)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        db_table = "meta_webhook_deliveries"
        ordering = ["-received_at", "-id"]
        verbose_name = "Meta webhook delivery"
        verbose_name_plural = "Meta webhook deliveries"
        indexes = [
            # Workers and the sweeper ask: which deliveries are still waiting, oldest first?
            models.Index(
                fields=["received_at"], condition=Q(processed_at__isnull=True), name="meta_deliveries_pending"
            ),
            models.Index(fields=["received_at"], name="meta_deliveries_received"),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.object})"

    @classmethod
    def store(cls, meta_object: str, body: str) -> int:
        """Insert a verified body as it arrived; returns the new id.

        The webhook's hot path: one statement, and PostgreSQL parses the JSON text itself
        instead of the ORM serialising the parsed payload again.
        """
        # In autocommit mode the INSERT commits by itself, without BEGIN/COMMIT round trips.
        # Inside a transaction, a savepoint keeps a refused body from aborting it.
        guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        with guard, connection.cursor() as cursor:
            cursor.execute(STORE_SQL, [meta_object, body])
            return cursor.fetchone()[0]

    @property
    def account_ids(self) -> list[str]:
        entries = self.payload.get("entry") if isinstance(self.payload, dict) else None
        return [str(e.get("id")) for e in entries or [] if isinstance(e, dict)]


class ContactWindow(models.Model):
    """When a contact last wrote to a connected account: Meta's 24 h messaging window.

    A business may message a person only within 24 h of that person's last message. The
    row is upserted while a delivery is processed, before any flow for it runs.
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+", db_index=False)
    contact_id = models.CharField(max_length=64, help_text="IGSID or PSID of the person.")
    last_inbound_at = models.DateTimeField()

    class Meta:
        db_table = "meta_contact_windows"
        constraints = [models.UniqueConstraint(fields=["token", "contact_id"], name="meta_contact_windows_contact")]
        indexes = [models.Index(fields=["last_inbound_at"], name="meta_contact_windows_inbound")]

    def __str__(self) -> str:
        return f"Contact {self.contact_id} of token {self.token_id}"


class PrivateReply(models.Model):
    """A private reply claimed or sent for a comment: Meta allows one per comment.

    The row is written before the Graph API call (status `sending`), so two flows reacting
    to the same comment cannot both send. A call that certainly did not go through (a
    refusal, a rate limit) releases the claim; anything else keeps it.
    """

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+", db_index=False)
    comment_id = models.CharField(max_length=64)
    contact_id = models.CharField(max_length=64, blank=True, help_text="The commenter's IGSID, when known.")
    # Which step claimed it: a retry of that same step may send; anyone else may not.
    execution_id = models.BigIntegerField(null=True, blank=True)
    node_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    message_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "meta_private_replies"
        verbose_name_plural = "private replies"
        constraints = [models.UniqueConstraint(fields=["token", "comment_id"], name="meta_private_replies_comment")]
        indexes = [models.Index(fields=["created_at"], name="meta_private_replies_created")]

    def __str__(self) -> str:
        return f"Private reply to comment {self.comment_id}"
