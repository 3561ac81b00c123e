from __future__ import annotations

import hmac

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import Conflict, CursorPagination, NoInputSerializer, OwnedQuerysetMixin, check_no_input, loads_strict
from core.openapi import error
from core.ratelimit import client_ip, over_limit
from core.views import json_error
from executions.filters import ExecutionFilter
from executions.models import FlowExecution
from executions.runner import disabled_node_types
from executions.serializers import ExecutionSerializer
from executions.services import start_execution
from flows.models import Flow


class ExecutionViewSet(OwnedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = FlowExecution.objects.all()
    serializer_class = ExecutionSerializer
    filterset_class = ExecutionFilter
    # Newest first, page by page with `next` links: a count over a busy account's whole
    # history cost tens of ms per request at 100k runs (bench/load.py).
    pagination_class = CursorPagination
    lookup_value_regex = "[0-9]+"  # not \d: it matches any script's digits, and int() reads them

    @extend_schema(
        request=NoInputSerializer,
        responses={200: ExecutionSerializer, 409: error("The execution has already finished (or been cancelled).")},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a run: pending and waiting ones stop at once, running ones at the next step."""
        check_no_input(request)
        execution = self.get_object()
        if not execution.request_cancel():
            raise Conflict(f"The execution has already {execution.status}.")
        return Response(ExecutionSerializer(execution).data)


@csrf_exempt
@require_POST
def flow_webhook(request: HttpRequest, flow_id: int, secret: str) -> JsonResponse:
    """`trigger.webhook`: a JSON object POSTed to the flow's secret URL starts a run.

    An `Idempotency-Key` header makes retries of the same delivery start one run only.
    Wrong URLs count against the caller's address and right ones against the flow, so
    nobody can use up a flow's budget without knowing its secret.
    """
    flow = Flow.objects.filter(pk=flow_id).only("id", "user_id", "status", "flow_data", "webhook_secret").first()
    # One answer for "no such flow" and "wrong secret": the URL reveals nothing.
    if flow is None or not hmac.compare_digest(flow.webhook_secret.encode(), secret.encode()):
        return over_limit("webhooks", f"miss:{client_ip(request)}") or json_error(404, "Not found.", "not_found")
    if refused := over_limit("webhooks", f"flow:{flow.pk}"):
        return refused
    if flow.status != Flow.Status.ACTIVE or flow.trigger_type != "trigger.webhook":
        return json_error(409, "This flow is not active with a webhook trigger.", "flow_not_active")
    if "trigger.webhook" in disabled_node_types():
        return json_error(409, "Webhook triggers are switched off on this Inflow server.", "node_type_disabled")
    try:
        body = loads_strict(request.body or b"{}")
    except exceptions.ParseError as exc:
        return json_error(400, str(exc.detail), "parse_error")
    if not isinstance(body, dict):
        return json_error(400, "The body must be a JSON object.", "invalid")
    key = request.headers.get("Idempotency-Key", "")[:200] or None
    execution, created = start_execution(
        flow=flow, trigger_type="trigger.webhook", trigger_data=body, dedup_key=f"webhook:{key}" if key else None
    )
    return JsonResponse({"execution": execution.pk, "created": created}, status=202)
