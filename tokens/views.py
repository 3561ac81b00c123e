from __future__ import annotations

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import OwnedQuerysetMixin
from tokens.models import ApiToken
from tokens.serializers import ApiTokenSerializer


class ApiTokenViewSet(
    OwnedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Connected Instagram / Facebook accounts. `access_token` is write-only.

    POSTing an account that the caller already connected replaces its token (200);
    a new connection answers 201.
    """

    queryset = ApiToken.objects.defer("access_token")
    serializer_class = ApiTokenSerializer
    lookup_value_regex = "[0-9]+"  # not \d: it matches any script's digits, and int() reads them

    @extend_schema(
        responses={
            201: OpenApiResponse(ApiTokenSerializer, description="A new connection."),
            200: OpenApiResponse(ApiTokenSerializer, description="The account was connected already: new token."),
        }
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        raw_token = data.pop("access_token")
        existing = ApiToken.objects.filter(provider=data["provider"], account_id=data["account_id"]).first()
        if existing is not None and existing.user_id != request.user.id:
            raise serializers.ValidationError({"account_id": ["This account is connected to another Inflow user."]})
        token = existing or ApiToken(user=request.user)
        for field, value in data.items():
            setattr(token, field, value)
        token.set_token(raw_token)
        token.status, token.status_reason = ApiToken.Status.ACTIVE, ""
        try:
            with transaction.atomic():
                token.save()
        except IntegrityError:
            raise serializers.ValidationError({"account_id": ["This account is already connected."]}) from None
        code = status.HTTP_200_OK if existing else status.HTTP_201_CREATED
        return Response(self.get_serializer(token).data, status=code)
