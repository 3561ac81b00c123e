from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import gdpr


class ExportView(APIView):
    """All of the caller's data, decrypted, as one JSON document (access tokens excluded)."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> StreamingHttpResponse:
        response = StreamingHttpResponse(gdpr.export_user(request.user), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="inflow-export-{timezone.now():%Y%m%d}.json"'
        return response


class DeletionRequestView(APIView):
    """Ask for the account to be deleted: it is disabled now and purged after the grace period."""

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer(
                "DeletionRequest",
                {"status": serializers.CharField(), "purge_after": serializers.DateTimeField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        outcome = gdpr.request_deletion(request.user)
        return Response({"status": "scheduled", "purge_after": outcome["purge_after"]}, status=status.HTTP_202_ACCEPTED)
