from django.contrib import admin

from tokens.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Connected accounts. The access token itself is never loaded, let alone shown."""

    list_display = ["id", "provider", "account_id", "user", "status", "token_hint", "expires_at", "last_refreshed_at"]
    list_filter = ["provider", "status"]
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
