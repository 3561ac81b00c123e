from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class FlowExecution(models.Model):
    """One run of a flow: the event that started it, its state and its step log."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING, Status.WAITING)
    FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="executions", db_index=False)
    # Denormalised from the flow so "my executions" is one indexed range scan.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    trigger_type = models.CharField(max_length=64, default="trigger.manual")
    trigger_data = models.JSONField(default=dict)
    execution_log = models.JSONField(default=list)
    # When the run was requested; the seed's index orders recent runs by it.
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    dedup_key = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        db_table = "flow_executions"
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index("flow", models.F("started_at").desc(), name="flow_executions_flow_started"),
            models.Index("user", models.F("started_at").desc(), name="flow_executions_user_started"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "dedup_key"], condition=Q(dedup_key__isnull=False), name="flow_executions_dedup"
            ),
        ]

    def __str__(self) -> str:
        return f"Execution {self.pk} of flow {self.flow_id}"
