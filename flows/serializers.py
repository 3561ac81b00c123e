from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import RejectUnknownFieldsMixin
from flows import catalog, graph
from flows.models import Flow, NodeType

# The shape flows/graph.py checks, for the API schema. What it cannot say (edges between
# existing nodes, one trigger, no cycles, each node's config against its type's
# config_schema from GET /api/v1/node-types/) is a 400 naming the node and field.
PORT_HELP = f"An output port of the source ({graph.DEFAULT_PORT!r} when left out)."
FLOW_DATA_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "nodes": {
            "type": "array",
            "maxItems": graph.MAX_NODES,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string", "pattern": graph.NODE_ID_PATTERN.pattern},
                    "type": {"type": "string", "enum": sorted(spec.type for spec in catalog.all_specs())},
                    "config": {"type": "object", "description": "As the node type's config_schema says."},
                    "position": graph.POSITION_SCHEMA,
                    "label": {"type": "string", "maxLength": 200},
                    "retry": graph.RETRY_SCHEMA,
                },
            },
        },
        "edges": {
            "type": "array",
            "maxItems": graph.MAX_EDGES,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["source", "target"],
                "properties": {
                    "source": {"type": "string", "description": "A node id."},
                    "target": {"type": "string", "description": "A node id; never a trigger."},
                    "port": {"type": "string", "description": PORT_HELP},
                },
            },
        },
    },
}


@extend_schema_field(FLOW_DATA_SCHEMA)
class FlowDataField(serializers.JSONField):
    pass


class NodeTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeType
        fields = ["type", "name", "category", "description", "config_schema", "ports", "enabled"]
        read_only_fields = fields


class FlowSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    flow_data = FlowDataField(
        required=False, help_text="The graph: a trigger node, then steps, joined by edges (an empty draft is {})."
    )
    webhook_url = serializers.SerializerMethodField(
        help_text="For flows with a trigger.webhook trigger: POST a JSON object here to start a run."
    )

    class Meta:
        model = Flow
        fields = ["id", "name", "flow_data", "status", "webhook_url", "created_at", "updated_at"]
        read_only_fields = ["id", "webhook_url", "created_at", "updated_at"]

    def get_webhook_url(self, flow: Flow) -> str | None:
        if flow.trigger_type != "trigger.webhook":
            return None
        # Annotated by Flow.objects.with_webhook_secrets() on reads; loaded on demand after writes.
        secret = getattr(flow, "used_webhook_secret", None) or flow.webhook_secret
        path = reverse("flow-webhook", kwargs={"flow_id": flow.pk, "secret": secret})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def validate_flow_data(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object with 'nodes' and 'edges' lists.")
        return value

    def validate(self, attrs: dict) -> dict:
        instance: Flow | None = self.instance
        flow = Flow(
            flow_data=attrs.get("flow_data", instance.flow_data if instance else {}),
            status=attrs.get("status", instance.status if instance else Flow.Status.DRAFT),
        )
        # Drafts may be incomplete but never wrong; an active flow must be complete.
        errors = flow.graph_errors(complete=flow.status == Flow.Status.ACTIVE)
        if errors:
            detail = {"flow_data": [str(error) for error in errors]}
            if flow.status == Flow.Status.ACTIVE and all(e.incomplete for e in errors):
                detail["status"] = ["An active flow needs a complete graph; save it as a draft until then."]
            raise serializers.ValidationError(detail)
        return attrs


class RunFlowSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    trigger_data = serializers.DictField(
        required=False, default=dict, help_text="Becomes {{ trigger.* }} in the flow's templates."
    )
