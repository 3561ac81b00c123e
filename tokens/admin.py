"""Admin for connected accounts, webhook deliveries and Meta's bookkeeping.

No page ever loads a secret: the access token column is deferred and excluded (also when
a contact window or private reply joins its token), and a delivery's payload (contacts'
messages) is summarised by ids and counts, not shown.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from tokens.models import MESSAGING_WINDOW, ApiToken, ContactWindow, MetaWebhookDelivery, PrivateReply

# A private reply claim is `sending` only while its Graph API call runs (at most
# META_HTTP_TIMEOUT); one still sending after this long was left by a step that died or
# timed out after the request went out.
STUCK_CLAIM_AFTER = timedelta(minutes=10)


class RefreshProblemFilter(admin.SimpleListFilter):
    title = "refresh or status problem"
    parameter_name = "problem"

    def lookups(self, request, model_admin):
        return [("yes", "Has a problem"), ("no", "No problem")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(status_reason="")
        if self.value() == "no":
            return queryset.filter(status_reason="")
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Connected accounts. The access token itself is never loaded, let alone shown."""

    list_display = [
        "id",
        "provider",
        "account_id",
        "account_name",
        "user",
        "status",
        "token_hint",
        "expires_at",
        "last_refreshed_at",
        "status_reason",
    ]
    list_filter = ["provider", "status", RefreshProblemFilter]
    list_select_related = ["user"]
    search_fields = ["=account_id", "account_name"]
    exclude = ["access_token"]
    readonly_fields = [
        "user",
        "provider",
        "account_id",
        "account_name",
        "token_hint",
        "last_refreshed_at",
        "created_at",
        "updated_at",
    ]
    fields = [
        "user",
        "provider",
        "account_id",
        "account_name",
        "token_hint",
        "token_type",
        "scopes",
        "expires_at",
        "status",
        "status_reason",
        "last_refreshed_at",
        "created_at",
        "updated_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("access_token")

    def has_add_permission(self, request) -> bool:
        return False  # tokens arrive through the API, where they are validated and encrypted


@admin.register(MetaWebhookDelivery)
class MetaWebhookDeliveryAdmin(admin.ModelAdmin):
    """Deliveries waiting, processed or given up. Payloads hold contacts' messages: not shown."""

    list_display = ["id", "object", "accounts", "received_at", "processed_at", "attempts", "executions_started"]
    list_filter = ["object", ("processed_at", admin.EmptyFieldListFilter)]
    date_hierarchy = "received_at"
    fields = [
        "object",
        "accounts",
        "event_count",
        "received_at",
        "processed_at",
        "attempts",
        "last_error",
        "executions_started",
    ]
    readonly_fields = fields
    actions = ["reprocess"]

    @admin.display(description="accounts (entry ids)")
    def accounts(self, delivery: MetaWebhookDelivery) -> str:
        return ", ".join(dict.fromkeys(delivery.account_ids))

    @admin.display(description="entries")
    def event_count(self, delivery: MetaWebhookDelivery) -> int:
        return len(delivery.account_ids)

    @admin.action(description="Process the selected unprocessed deliveries again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet) -> None:
        from tokens.tasks import nudge

        count = queryset.filter(processed_at__isnull=True).update(attempts=0, last_error="")
        if count:
            nudge(force=True)
        self.message_user(request, f"{count} deliveries queued for processing.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TokenRowAdmin(admin.ModelAdmin):
    """Rows that belong to a connected account: shown with it, never with its token."""

    list_select_related = ["token__user"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("token__user").defer("token__access_token")

    def has_add_permission(self, request) -> bool:
        return False  # written by webhook processing and the Meta nodes only

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="account", ordering="token__account_id")
    def account(self, row) -> str:
        return str(row.token)


class WindowOpenFilter(admin.SimpleListFilter):
    title = "24 h window"
    parameter_name = "window"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("closed", "Closed")]

    def queryset(self, request, queryset):
        since = timezone.now() - MESSAGING_WINDOW
        if self.value() == "open":
            return queryset.filter(last_inbound_at__gt=since)
        if self.value() == "closed":
            return queryset.filter(last_inbound_at__lte=since)
        return queryset


@admin.register(ContactWindow)
class ContactWindowAdmin(TokenRowAdmin):
    """When each contact last wrote to an account: messages may go out for 24 h after that.

    Read-only, without delete: a row is rewritten by the contact's next message and purged
    hourly once closed; deleting one could only make a legitimate reply fail. Erasing a
    contact goes through the GDPR tooling, which also clears their deliveries.
    """

    list_display = ["id", "contact_id", "account", "token__user", "last_inbound_at", "window_open"]
    list_filter = [WindowOpenFilter, "token__provider"]
    search_fields = ["=contact_id", "=token__account_id"]
    date_hierarchy = "last_inbound_at"
    fields = ["token", "contact_id", "last_inbound_at", "window_open"]
    readonly_fields = fields

    @admin.display(boolean=True, description="window open")
    def window_open(self, window: ContactWindow) -> bool:
        return window.last_inbound_at > timezone.now() - MESSAGING_WINDOW

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def stuck_claims(queryset: QuerySet) -> QuerySet:
    return queryset.filter(status=PrivateReply.Status.SENDING, created_at__lt=timezone.now() - STUCK_CLAIM_AFTER)


class StuckClaimFilter(admin.SimpleListFilter):
    title = "stuck claim"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("yes", f"Sending for over {STUCK_CLAIM_AFTER.seconds // 60} minutes")]

    def queryset(self, request, queryset):
        return stuck_claims(queryset) if self.value() == "yes" else queryset


@admin.register(PrivateReply)
class PrivateReplyAdmin(TokenRowAdmin):
    """The one private reply per comment Meta allows: claimed (`sending`) before the call, then `sent`.

    Read-only. A `sent` row can never be deleted: it is what stops a second reply. A claim
    stuck in `sending` (the call timed out after leaving, or its worker died) blocks every
    later reply to that comment; staff who checked in the account's inbox that nothing went
    out may release it, from its delete page or with the "release" action, so a new run can
    send. Only stuck claims can be released, never one whose call may still be running.
    """

    list_display = [
        "id",
        "comment_id",
        "contact_id",
        "account",
        "token__user",
        "status",
        "execution_id",
        "node_id",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", StuckClaimFilter, "token__provider"]
    search_fields = ["=comment_id", "=contact_id", "=token__account_id"]
    date_hierarchy = "created_at"
    fields = [
        "token",
        "comment_id",
        "contact_id",
        "status",
        "execution_id",
        "node_id",
        "message_id",
        "created_at",
        "sent_at",
    ]
    readonly_fields = fields
    actions = ["release"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would take sent replies too
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and not (
            obj.status == PrivateReply.Status.SENDING and obj.created_at < timezone.now() - STUCK_CLAIM_AFTER
        ):
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Release the selected stuck claims (nothing was sent)", permissions=["delete"])
    def release(self, request: HttpRequest, queryset: QuerySet) -> None:
        count, _ = stuck_claims(queryset).delete()
        self.message_user(request, f"{count} stuck claims released; sent replies and recent claims were kept.")
