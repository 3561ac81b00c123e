from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from executions.models import FlowExecution
from flows.drawing import STATUS_STROKE, admin_picture, format_ms

LOG_PREVIEW_CHARS = 300


def _preview(value) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= LOG_PREVIEW_CHARS else text[:LOG_PREVIEW_CHARS] + "…"


@admin.register(FlowExecution)
class FlowExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "flow", "user_id", "status", "trigger_type", "started_at", "duration", "recoveries"]
    list_filter = ["status", "trigger_type"]
    list_select_related = ["flow"]
    search_fields = ["=id", "=flow__id"]
    date_hierarchy = "started_at"
    show_full_result_count = False
    actions = ["cancel_executions"]
    fieldsets = [
        (None, {"fields": ["flow", "user", "status", "error", "trigger_type", "dedup_key"]}),
        ("Path taken", {"fields": ["graph_version", "picture", "steps"]}),
        ("Timing", {"fields": ["started_at", "completed_at", "duration", "run_seconds", "resume_at", "recoveries"]}),
        ("Trigger data", {"fields": ["trigger_data_pretty"]}),
    ]
    readonly_fields = [
        "flow",
        "user",
        "status",
        "error",
        "trigger_type",
        "dedup_key",
        "graph_version",
        "picture",
        "steps",
        "started_at",
        "completed_at",
        "duration",
        "run_seconds",
        "resume_at",
        "recoveries",
        "trigger_data_pretty",
    ]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            # The change list never needs the (possibly large) JSON documents.
            queryset = queryset.defer("trigger_data", "execution_log", "state")
        else:
            # The page draws the run's graph (its version) and compares it with the flow's.
            queryset = queryset.select_related("flow", "flow_version")
        return queryset.defer("flow__webhook_secret")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Duration")
    def duration(self, execution: FlowExecution) -> str:
        seconds = execution.duration_seconds
        if seconds is None:
            return "—"
        return format_ms(seconds * 1000) if seconds < 1 else f"{seconds:.2f} s"

    @admin.display(description="Graph")
    def graph_version(self, execution: FlowExecution) -> str:
        version = execution.flow_version
        if version is None:
            return "The flow's current graph (the run started before flow versions were kept)."
        if version.flow_data == execution.flow.flow_data:
            return f"Version {version.short_digest}, the flow's current graph."
        return f"Version {version.short_digest}, as the run started: the flow has been edited since."

    @admin.display(description="Picture")
    def picture(self, execution: FlowExecution) -> str:
        version = execution.flow_version
        graph = execution.flow.flow_data if version is None else version.flow_data
        return admin_picture(graph, execution.execution_log)

    @admin.display(description="Steps")
    def steps(self, execution: FlowExecution) -> str:
        if not execution.execution_log:
            return "No steps yet."
        rows = (
            (
                STATUS_STROKE.get(entry.get("status"), "#202124"),
                entry.get("node_id"),
                entry.get("type"),
                entry.get("status"),
                entry.get("attempt"),
                str(entry.get("started_at") or ""),
                # The engine writes ISO 8601 in UTC: to the second is what a reader needs.
                str(entry.get("started_at") or "")[:19].replace("T", " "),
                format_ms(entry.get("duration_ms")),
                entry.get("error") or entry.get("decision") or "",
                _preview(entry.get("output")),
            )
            for entry in execution.execution_log
        )
        body = format_html_join(
            "",
            '<tr><td>{1}</td><td>{2}</td><td style="color:{0};font-weight:bold">{3}</td><td>{4}</td>'
            '<td title="{5}">{6}</td><td>{7}</td><td>{8}</td><td><code>{9}</code></td></tr>',
            rows,
        )
        return format_html(
            '<div class="inflow-wide"><table class="inflow-steps"><thead><tr><th>Node</th><th>Type</th><th>Status</th>'
            "<th>Attempt</th><th>Started (UTC)</th><th>Duration</th><th>Error</th><th>Output</th></tr></thead>"
            "<tbody>{}</tbody></table></div>",
            body,
        )

    @admin.display(description="Trigger data")
    def trigger_data_pretty(self, execution: FlowExecution) -> str:
        return format_html("<pre>{}</pre>", json.dumps(execution.trigger_data, indent=2, ensure_ascii=False))

    @admin.action(description="Cancel the selected executions")
    def cancel_executions(self, request: HttpRequest, queryset: QuerySet) -> None:
        cancelled = sum(
            1 for execution in queryset.filter(status__in=FlowExecution.ACTIVE_STATUSES) if execution.request_cancel()
        )
        self.message_user(request, f"Cancelled or asked to stop {cancelled} execution(s).", messages.SUCCESS)
