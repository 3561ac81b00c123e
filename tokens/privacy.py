"""The Meta integration's part of GDPR (see the module docstring of tokens/models.py).

`provider` is the token provider: "instagram", or "facebook" for Messenger contacts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db.models import Q

from tokens.models import ApiToken, ContactWindow, MetaWebhookDelivery, PrivateReply


def on_deletion_request(user) -> dict[str, int]:
    """No more Graph API calls on the account's behalf."""
    revoked = (
        ApiToken.objects.filter(user=user)
        .exclude(status=ApiToken.Status.REVOKED)
        .update(status=ApiToken.Status.REVOKED, status_reason="The account owner asked for deletion.")
    )
    return {"tokens_revoked": revoked}


def _deliveries_for_accounts(account_ids: list[str]):
    query = Q()
    for account_id in account_ids:
        query |= Q(payload__contains={"entry": [{"id": account_id}]})
    return MetaWebhookDelivery.objects.filter(query) if account_ids else MetaWebhookDelivery.objects.none()


def purge_user(user_id: int, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    tokens = ApiToken.objects.filter(user_id=user_id)
    account_ids = list(tokens.values_list("account_id", flat=True))
    deliveries, _ = _deliveries_for_accounts(account_ids).delete()
    # Contact windows and private replies go with their token (on_delete=CASCADE). Only the
    # ids are loaded: deleting a token must not decrypt it.
    _, per_model = tokens.only("id").delete()
    counts = {
        "api_tokens": per_model.get(ApiToken._meta.label, 0),
        "meta_contact_windows": per_model.get(ContactWindow._meta.label, 0),
        "meta_private_replies": per_model.get(PrivateReply._meta.label, 0),
        "meta_webhook_deliveries": deliveries,
    }
    report(f"meta: {counts}")
    return counts


def erase_contact(provider: str, contact_id: str, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    counts = {
        "meta_contact_windows": ContactWindow.objects.filter(contact_id=contact_id, token__provider=provider).delete()[
            0
        ],
        "meta_private_replies": PrivateReply.objects.filter(contact_id=contact_id, token__provider=provider).delete()[
            0
        ],
        "meta_webhook_deliveries": MetaWebhookDelivery.objects.mentioning(contact_id, as_recipient=True).delete()[0],
    }
    report(f"meta: {counts}")
    return counts


def contact_ids() -> Iterator[tuple[str, str]]:
    """Every (provider, contact id) the Meta tables know, for re-applying the ledger."""
    for model in (ContactWindow, PrivateReply):
        yield from model.objects.exclude(contact_id="").values_list("token__provider", "contact_id").distinct()


def export_user(user) -> dict[str, Iterator[dict]]:
    """Connected accounts, without their access tokens."""

    def accounts() -> Iterator[dict]:
        fields = [
            "id",
            "provider",
            "account_id",
            "account_name",
            "token_hint",
            "token_type",
            "scopes",
            "expires_at",
            "last_refreshed_at",
            "status",
            "status_reason",
            "created_at",
        ]
        yield from ApiToken.objects.filter(user=user).order_by("id").values(*fields).iterator()

    return {"connected_accounts": accounts()}
