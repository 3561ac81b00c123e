"""Admin for connected accounts and webhook deliveries.

Neither page ever loads a secret: the access token column is deferred and excluded, and
a delivery's payload (contacts' messages) is summarised by ids and counts, not shown.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from tokens.models import ApiToken, MetaWebhookDelivery


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
        "user",
        "status",
        "token_hint",
        "expires_at",
        "last_refreshed_at",
        "status_reason",
    ]
    list_filter = ["provider", "status", RefreshProblemFilter]
    list_select_related = ["user"]
    search_fields = ["=account_id"]
    exclude = ["access_token"]
    readonly_fields = ["user", "provider", "account_id", "token_hint", "last_refreshed_at", "created_at", "updated_at"]
    fields = [
        "user",
        "provider",
        "account_id",
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
