from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from core.api import RejectUnknownFieldsMixin
from flows.models import Flow, NodeType


class NodeTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeType
        fields = ["type", "name", "category", "description", "config_schema", "ports", "enabled"]
        read_only_fields = fields


class FlowSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
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
        path = reverse("flow-webhook", kwargs={"flow_id": flow.pk, "secret": flow.webhook_secret})
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
