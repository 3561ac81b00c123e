from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone


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

    class Meta:
        db_table = "flows"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user"], name="flows_user_id_idx"),
            GinIndex(fields=["flow_data"], name="flows_flow_data_gin", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self) -> str:
        return self.name
