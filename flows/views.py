from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import Conflict, OwnedQuerysetMixin
from core.openapi import error
from executions.serializers import ExecutionSerializer
from executions.services import start_execution
from flows.filters import FlowFilter
from flows.models import Flow, NodeType
from flows.schedules import remove_schedules, sync_schedule
from flows.serializers import FlowSerializer, NodeTypeSerializer, RunFlowSerializer


class NodeTypeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The node catalog: every node type with its config JSON Schema and output ports."""

    queryset = NodeType.objects.all()
    serializer_class = NodeTypeSerializer
    pagination_class = None


class FlowViewSet(OwnedQuerysetMixin, viewsets.ModelViewSet):
    queryset = Flow.objects.with_webhook_secrets()
    serializer_class = FlowSerializer
    filterset_class = FlowFilter
    lookup_value_regex = "[0-9]+"  # not \d: it matches any script's digits, and int() reads them

    @transaction.atomic
    def perform_create(self, serializer: FlowSerializer) -> None:
        flow = serializer.save(user=self.request.user)
        sync_schedule(flow)

    @transaction.atomic
    def perform_update(self, serializer: FlowSerializer) -> None:
        flow = serializer.save()
        sync_schedule(flow)

    @transaction.atomic
    def perform_destroy(self, instance: Flow) -> None:
        remove_schedules([instance.pk])
        instance.delete()

    @extend_schema(
        request=RunFlowSerializer,
        responses={
            202: ExecutionSerializer,
            409: error("flow_not_runnable: the flow is paused or archived; flow_incomplete: its graph is unfinished."),
        },
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        """Start a run now with the given trigger data (draft and active flows)."""
        flow = self.get_object()
        payload = RunFlowSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        # The request is fine; the flow's state is what stands in the way: a 409, not a 400.
        if flow.status not in Flow.RUNNABLE_STATUSES:
            raise Conflict(f"The flow is {flow.status}; make it draft or active to run it.", code="flow_not_runnable")
        errors = flow.graph_errors(complete=True)
        if errors:
            raise Conflict(
                "The flow is not complete: " + "; ".join(str(problem) for problem in errors), code="flow_incomplete"
            )
        execution, _ = start_execution(
            flow=flow, trigger_type="trigger.manual", trigger_data=payload.validated_data["trigger_data"]
        )
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)
