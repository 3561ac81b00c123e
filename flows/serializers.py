from __future__ import annotations

from rest_framework import serializers

from core.api import RejectUnknownFieldsMixin
from flows.models import Flow, NodeType


class NodeTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeType
        fields = ["type", "name", "category", "description", "config_schema", "ports", "enabled"]
        read_only_fields = fields


class FlowSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = Flow
        fields = ["id", "name", "flow_data", "status", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
