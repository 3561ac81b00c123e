from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import gdpr
from core.api import NoInputSerializer, check_no_input


def _rows(description: str, *fields: str) -> dict:
    return {"type": "array", "description": description, "items": {"type": "object", "required": list(fields)}}


# What accounts.gdpr.export_user writes; sections come from each app's privacy module.
EXPORT_SCHEMA = {
    "type": "object",
    "required": [
        "exported_at",
        "user",
        "api_keys",
        "executions",
        "connected_accounts",
        "knowledge_documents",
        "flows",
        "flow_versions",
    ],
    "properties": {
        "exported_at": {"type": "string", "format": "date-time"},
        "user": {
            "type": "object",
            "required": ["id", "email", "name", "role", "created_at", "last_login", "deletion_requested_at"],
        },
        "api_keys": _rows("API keys, without their secrets.", "name", "prefix", "created_at", "revoked_at"),
        "executions": _rows("Every run of the caller's flows, with its log.", "id", "flow_id", "status"),
        "connected_accounts": _rows("Connected accounts, without access tokens.", "id", "provider", "account_id"),
        "knowledge_documents": _rows("Knowledge documents, with their text.", "id", "title", "content"),
        "flows": _rows("Flows, with their graphs.", "id", "name", "status", "flow_data"),
        "flow_versions": _rows("Every graph a run of the flows executed.", "id", "flow_id", "flow_data", "created_at"),
    },
}


class ExportView(APIView):
    """All of the caller's data, decrypted, as one JSON document (access tokens excluded).

    The document is streamed section by section as it is read from the database, so the
    answer has no Content-Length, and an error that happens mid-way cuts the document short
    instead of turning into an error status.
    """

    @extend_schema(
        responses={200: OpenApiResponse(EXPORT_SCHEMA, description="A JSON document, streamed; save it as a file.")},
        parameters=[
            OpenApiParameter(
                "Content-Disposition",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                required=True,
                description='attachment; filename="inflow-export-YYYYMMDD.json"',
            )
        ],
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        response = StreamingHttpResponse(gdpr.export_user(request.user), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="inflow-export-{timezone.now():%Y%m%d}.json"'
        return response


class DeletionRequestView(APIView):
    """Ask for the account to be deleted: it is disabled now and purged after the grace period."""

    @extend_schema(
        request=NoInputSerializer,
        responses={
            202: inline_serializer(
                "DeletionRequest",
                {"status": serializers.CharField(), "purge_after": serializers.DateTimeField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        check_no_input(request)
        outcome = gdpr.request_deletion(request.user)
        return Response({"status": "scheduled", "purge_after": outcome["purge_after"]}, status=status.HTTP_202_ACCEPTED)
