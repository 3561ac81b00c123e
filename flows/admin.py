from django.contrib import admin

from flows.models import Flow, NodeType


@admin.register(NodeType)
class NodeTypeAdmin(admin.ModelAdmin):
    list_display = ["type", "name", "category", "enabled", "updated_at"]
    list_editable = ["enabled"]
    list_filter = ["category", "enabled"]
    search_fields = ["type", "name"]
    readonly_fields = ["type", "name", "category", "description", "config_schema", "ports", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False  # the catalog is defined in code; sync_node_types writes the rows

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "status", "created_at", "updated_at"]
    list_display_links = ["id", "name"]
    list_filter = ["status"]
    list_select_related = ["user"]
    search_fields = ["name"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at", "updated_at"]
