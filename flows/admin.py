from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from executions.services import start_execution
from flows.drawing import admin_picture
from flows.models import Flow, FlowVersion, NodeType
from flows.schedules import remove_schedules, sync_schedule


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


class GraphField(forms.JSONField):
    """The graph as indented JSON in a large box: one line of JSON is not editable by hand."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


class FlowAdminForm(forms.ModelForm):
    flow_data = GraphField(widget=forms.Textarea(attrs={"rows": 24, "class": "vLargeTextField inflow-json"}))

    class Meta:
        model = Flow
        fields = ["user", "name", "status", "flow_data"]

    def clean(self):
        cleaned = super().clean()
        flow = Flow(flow_data=cleaned.get("flow_data", {}), status=cleaned.get("status", Flow.Status.DRAFT))
        errors = flow.graph_errors(complete=flow.status == Flow.Status.ACTIVE)
        if errors:
            raise forms.ValidationError([str(error) for error in errors])
        return cleaned


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    form = FlowAdminForm
    list_display = ["id", "name", "user", "status", "trigger", "node_count", "created_at", "updated_at"]
    list_display_links = ["id", "name"]
    list_filter = ["status"]
    list_select_related = ["user"]
    search_fields = ["name", "=id"]
    raw_id_fields = ["user"]
    readonly_fields = ["graph", "problems", "recent_runs", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["user", "name", "status"]}),
        ("Graph", {"fields": ["graph", "problems", "flow_data"]}),
        ("Runs", {"fields": ["recent_runs", "created_at", "updated_at"]}),
    ]
    actions = ["run_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("webhook_secret")

    @admin.display(description="Trigger")
    def trigger(self, flow: Flow) -> str:
        return flow.trigger_type or "—"

    @admin.display(description="Nodes")
    def node_count(self, flow: Flow) -> int:
        return flow.node_count

    @admin.display(description="Picture")
    def graph(self, flow: Flow) -> str:
        return admin_picture(flow.flow_data)

    @admin.display(description="Problems")
    def problems(self, flow: Flow) -> str:
        errors = flow.graph_errors(complete=True)
        if not errors:
            return "None: the graph is complete and valid."
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((str(e),) for e in errors)))

    @admin.display(description="Recent runs")
    def recent_runs(self, flow: Flow) -> str:
        runs = flow.executions.only("id", "status", "started_at").order_by("-started_at")[:10]
        if not runs:
            return "No runs yet."
        rows = (
            (
                reverse("admin:executions_flowexecution_change", args=[run.pk]),
                run.pk,
                run.status,
                # As the admin shows every other date (localized, in the current time zone).
                display_for_value(run.started_at, "—"),
                timesince(run.started_at, depth=1),
            )
            for run in runs
        )
        return format_html("<ul>{}</ul>", format_html_join("", '<li><a href="{}">#{}</a> {} at {} ({} ago)</li>', rows))

    @transaction.atomic
    def save_model(self, request: HttpRequest, obj: Flow, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        sync_schedule(obj)

    @transaction.atomic
    def delete_model(self, request: HttpRequest, obj: Flow) -> None:
        remove_schedules([obj.pk])
        super().delete_model(request, obj)

    @transaction.atomic
    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        remove_schedules(list(queryset.values_list("pk", flat=True)))
        super().delete_queryset(request, queryset)

    @admin.action(description="Run the selected flows now (empty trigger data)")
    def run_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        started = 0
        for flow in queryset:
            if flow.status not in Flow.RUNNABLE_STATUSES:
                self.message_user(request, f"{flow} is {flow.status}; drafts and active flows run.", messages.WARNING)
                continue
            errors = flow.graph_errors(complete=True)
            if errors:
                self.message_user(request, f"{flow}: {errors[0]}", messages.ERROR)
                continue
            start_execution(flow=flow, trigger_type="trigger.manual", trigger_data={})
            started += 1
        if started:
            self.message_user(request, f"Started {started} run(s).", messages.SUCCESS)


@admin.register(FlowVersion)
class FlowVersionAdmin(admin.ModelAdmin):
    """The graphs runs executed (each run keeps the one it started with). Read-only: a
    version is what a run did; the hourly retention deletes the ones no run refers to."""

    list_display = ["id", "flow", "short_digest", "created_at", "runs"]
    list_select_related = ["flow"]
    search_fields = ["=flow__id", "flow__name"]
    search_help_text = "A flow id, or words of its name."
    fields = ["flow", "digest", "created_at", "graph", "flow_data"]
    readonly_fields = fields

    def get_queryset(self, request):
        # One COUNT per page, not one per row.
        return super().get_queryset(request).defer("flow__webhook_secret").annotate(run_count=Count("executions"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # runs refer to it; the retention task removes unused ones

    @admin.display(description="Digest")
    def short_digest(self, version: FlowVersion) -> str:
        return version.short_digest

    @admin.display(description="Runs", ordering="run_count")
    def runs(self, version: FlowVersion) -> str:
        url = reverse("admin:executions_flowexecution_changelist")
        return format_html('<a href="{}?flow_version__id__exact={}">{}</a>', url, version.pk, version.run_count)

    @admin.display(description="Picture")
    def graph(self, version: FlowVersion) -> str:
        return admin_picture(version.flow_data)
