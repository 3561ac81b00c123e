from django.contrib import admin

from executions.models import FlowExecution


@admin.register(FlowExecution)
class FlowExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "flow", "status", "trigger_type", "started_at", "completed_at"]
    list_filter = ["status", "trigger_type"]
    list_select_related = ["flow"]
    search_fields = ["=id", "=flow__id"]
    date_hierarchy = "started_at"
    show_full_result_count = False

    def get_queryset(self, request):
        # The change list never needs the (possibly large) JSON documents.
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("trigger_data", "execution_log")
        return queryset

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
