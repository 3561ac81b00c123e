from __future__ import annotations

import math

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import OwnedQuerysetMixin
from core.openapi import error
from core.ratelimit import ScopedRateThrottle
from tokens import graph, services
from tokens.models import ApiToken
from tokens.serializers import ApiTokenSerializer


class MetaUnavailable(exceptions.APIException):
    """Meta could not confirm whose the token is: 503 (try again, maybe after Retry-After) or 502."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "meta_unavailable"

    def __init__(self, exc: graph.MetaUnavailableError) -> None:
        super().__init__(detail=f"Could not verify the token with Meta; try again. {exc}")
        if exc.bad_answer:
            self.status_code = status.HTTP_502_BAD_GATEWAY
        if exc.retry_after:
            self.wait = math.ceil(exc.retry_after)  # DRF sends it as Retry-After


class ApiTokenViewSet(
    OwnedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Connected Instagram / Facebook accounts. `access_token` is write-only.

    Before a token is stored, Meta is asked whose it is (`GET /me`): it must belong to
    `account_id`. POSTing an account that the caller already connected replaces its token
    (200); a new connection answers 201.
    """

    queryset = ApiToken.objects.defer("access_token")
    serializer_class = ApiTokenSerializer
    lookup_value_regex = "[0-9]+"  # not \d: it matches any script's digits, and int() reads them
    throttle_scope = "connect"  # per user; each connection costs a call to Meta

    def get_throttles(self) -> list:
        return [ScopedRateThrottle()] if self.action == "create" else []

    @extend_schema(
        responses={
            201: OpenApiResponse(ApiTokenSerializer, description="A new connection."),
            200: OpenApiResponse(ApiTokenSerializer, description="The account was connected already: new token."),
            400: error(
                "The request is invalid: malformed or too deeply nested JSON, NaN or NUL characters, an unknown "
                "field, or a field that fails validation (`errors` names them). Or the token cannot be connected "
                "(`errors.access_token`): Meta refused it (invalid, expired, revoked, missing permissions) or says "
                "it belongs to another account than `account_id`; or the account is connected to another Inflow "
                "user (`errors.account_id`)."
            ),
            502: error("meta_unavailable: Meta's answer did not say which account the token belongs to."),
            503: error(
                "meta_unavailable: Meta could not be reached, failed or rate-limited the check of the token; "
                "nothing was stored. `Retry-After` may say when to try again."
            ),
        }
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        try:
            token, created = services.connect_token(
                user=request.user,
                provider=data.pop("provider"),
                account_id=data.pop("account_id"),
                raw_token=data.pop("access_token"),
                **data,
            )
        except services.ConnectError as exc:
            raise serializers.ValidationError({exc.field: [str(exc)]}) from None
        except graph.MetaUnavailableError as exc:
            raise MetaUnavailable(exc) from None
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(token).data, status=code)
