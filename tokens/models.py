from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.fields import EncryptedTextField


class ApiToken(models.Model):
    """An Instagram or Facebook Page access token, encrypted at rest.

    `account_id` is the Instagram professional account id or the Page id: the id that
    arrives as `entry[].id` in webhooks and names the owner of the event.
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

    class Meta:
        db_table = "api_tokens"
        ordering = ["-created_at", "-id"]
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
