from __future__ import annotations

from rest_framework import mixins, viewsets

from core.api import OwnedQuerysetMixin
from flows.filters import FlowFilter
from flows.models import Flow, NodeType
from flows.serializers import FlowSerializer, NodeTypeSerializer


class NodeTypeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The node catalog: every node type with its config JSON Schema and output ports."""

    queryset = NodeType.objects.all()
    serializer_class = NodeTypeSerializer
    pagination_class = None


class FlowViewSet(OwnedQuerysetMixin, viewsets.ModelViewSet):
    queryset = Flow.objects.all()
    serializer_class = FlowSerializer
    filterset_class = FlowFilter
    lookup_value_regex = r"\d+"

    def perform_create(self, serializer: FlowSerializer) -> None:
        serializer.save(user=self.request.user)
