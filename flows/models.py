from __future__ import annotations

import hashlib
import json
import secrets

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import connection, models
from django.db.models import Case, F, Q, When
from django.utils import timezone

from core.fields import EncryptedTextField
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
    """One row per node type of the catalog (flows/catalog.py; synced by sync_node_types).

    The code defines what a node type is; the row lets staff switch a type off.
    """

    type = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    # The spec's category, as the code says: no choices here, so a new one needs no migration.
    category = models.CharField(max_length=16)
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


def canonical_json(flow_data: object) -> str:
    """The graph as one exact text: equal graphs give equal texts whatever their key order."""
    return json.dumps(flow_data, sort_keys=True, separators=(",", ":"))


def graph_digest(flow_data: object) -> str:
    return hashlib.sha256(canonical_json(flow_data).encode()).hexdigest()


VERSION_INSERT_SQL = """
INSERT INTO flow_versions (flow_id, digest, flow_data, created_at) VALUES (%s, %s, %s::jsonb, now())
ON CONFLICT (flow_id, digest) DO NOTHING RETURNING id
"""
# FOR KEY SHARE is the lock the run's foreign key takes anyway; holding it from here on keeps
# the retention cleanup (FOR UPDATE SKIP LOCKED) off the row until the run is committed.
VERSION_SELECT_SQL = "SELECT id FROM flow_versions WHERE flow_id = %s AND digest = %s FOR KEY SHARE"


class FlowVersionQuerySet(models.QuerySet["FlowVersion"]):
    def id_for(self, flow_id: int, flow_data: object) -> int:
        """The id of the version of this flow holding `flow_data`, created if it is new.

        One statement when the graph is new, two when it is known. A single statement cannot
        do both: a CTE's SELECT does not see a row a concurrent INSERT committed meanwhile.
        """
        text = canonical_json(flow_data)
        digest = hashlib.sha256(text.encode()).hexdigest()
        with connection.cursor() as cursor:
            for _ in range(3):
                cursor.execute(VERSION_INSERT_SQL, [flow_id, digest, text])
                row = cursor.fetchone()
                if row is None:
                    cursor.execute(VERSION_SELECT_SQL, [flow_id, digest])
                    row = cursor.fetchone()
                if row is not None:
                    return row[0]
                # Deleted between the two statements (an old graph the cleanup removed): again.
        raise RuntimeError(f"flow {flow_id}: could not store the version {digest}")


class FlowVersion(models.Model):
    """A graph as a flow had it when a run started: runs execute their version, never the
    flow's current graph, so editing a flow does not change the runs already under way.

    Content-addressed: one row per distinct graph of a flow (the sha256 of its canonical
    JSON), written by the first run that uses it, so no way of editing a flow (API, admin,
    an ORM update) has to remember to make one. Rows never change. They go with their flow;
    the hourly retention task deletes the ones no run refers to and that are not the flow's
    current graph (executions/tasks.py).
    """

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions", db_index=False)
    digest = models.CharField(max_length=64)
    flow_data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = FlowVersionQuerySet.as_manager()

    class Meta:
        db_table = "flow_versions"
        ordering = ["-created_at", "-id"]
        constraints = [
            # Also the index for the flow's versions (hence no index of its own on flow).
            models.UniqueConstraint(fields=["flow", "digest"], name="flow_versions_flow_digest"),
        ]

    def __str__(self) -> str:
        return f"Version {self.short_digest} of flow {self.flow_id}"

    @property
    def short_digest(self) -> str:
        return self.digest[:12]
