from rest_framework import viewsets

from core.api import OwnedQuerysetMixin
from executions.filters import ExecutionFilter
from executions.models import FlowExecution
from executions.serializers import ExecutionSerializer


class ExecutionViewSet(OwnedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = FlowExecution.objects.all()
    serializer_class = ExecutionSerializer
    filterset_class = ExecutionFilter
    lookup_value_regex = r"\d+"
