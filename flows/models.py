from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Case, F, Q, When
from django.utils import timezone

from core.fields import EncryptedTextField
from flows import catalog
from flows.graph import GraphError, trigger_node, validate_graph


class NodeTypeQuerySet(models.QuerySet["NodeType"]):
    def disabled_types(self) -> frozenset[str]:
        return frozenset(self.filter(enabled=False).values_list("type", flat=True))


class FlowQuerySet(models.QuerySet["Flow"]):
    def with_webhook_secrets(self) -> FlowQuerySet:
        """Decrypt the webhook secret only for flows that use it, in the same query.

        Decrypting every row's secret cost ~40% of a flow list's database time (load test).
        Other flows get NULL, which pgp_sym_decrypt skips.
        """
        uses_webhook = Q(flow_data__contains={"nodes": [{"type": "trigger.webhook"}]})
        return self.defer("webhook_secret").annotate(
            used_webhook_secret=Case(When(uses_webhook, then=F("webhook_secret")), output_field=EncryptedTextField())
        )


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class NodeType(models.Model):
    """One row per node type of the catalog in flows/catalog.py (synced by sync_node_types).

    The code defines what a node type is; the row lets staff switch a type off.
    """

    class Category(models.TextChoices):
        TRIGGER = "trigger", "Trigger"
        ACTION = "action", "Action"
        LOGIC = "logic", "Logic"
        KNOWLEDGE = "knowledge", "Knowledge"

    type = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    category = models.CharField(max_length=16, choices=Category.choices)
    description = models.TextField(blank=True)
    config_schema = models.JSONField(default=dict)
    ports = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = NodeTypeQuerySet.as_manager()

    class Meta:
        db_table = "node_types"
        ordering = ["category", "type"]

    def __str__(self) -> str:
        return self.type


class Flow(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flows", db_index=False)
    name = models.CharField(max_length=200)
    flow_data = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # The secret part of the flow's generic webhook URL (trigger.webhook).
    webhook_secret = EncryptedTextField(default=new_webhook_secret, editable=False)

    objects = FlowQuerySet.as_manager()

    # Events start only active flows; a manual run also works on drafts.
    RUNNABLE_STATUSES = (Status.DRAFT, Status.ACTIVE)

    class Meta:
        db_table = "flows"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user"], name="flows_user_id_idx"),
            GinIndex(fields=["flow_data"], name="flows_flow_data_gin", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self) -> str:
        return self.name

    def graph_errors(self, *, complete: bool, disabled_types: frozenset[str] | None = None) -> list[GraphError]:
        if disabled_types is None:
            disabled_types = NodeType.objects.disabled_types() if complete else frozenset()
        return validate_graph(self.flow_data, complete=complete, disabled_types=disabled_types)

    @property
    def trigger(self) -> dict | None:
        return trigger_node(self.flow_data) if isinstance(self.flow_data, dict) else None

    @property
    def trigger_type(self) -> str | None:
        node = self.trigger
        return node["type"] if node else None

    @property
    def node_count(self) -> int:
        nodes = self.flow_data.get("nodes", []) if isinstance(self.flow_data, dict) else []
        return len(nodes) if isinstance(nodes, list) else 0

    def uses_trigger(self, node_type: str) -> bool:
        return self.trigger_type == node_type and node_type in catalog.TRIGGER_TYPES
