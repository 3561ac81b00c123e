from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, User
from accounts.serializers import RegisterSerializer, TokenRequestSerializer, TokenSerializer, UserSerializer
from core.crypto import blind_index
from core.ratelimit import ScopedRateThrottle


class AuthThrottleMixin:
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"


class AccountThrottle(ScopedRateThrottle):
    """Sign-in attempts per account, wherever they come from: the per-address limit alone
    lets a botnet guess one person's password from many addresses. Keyed by the email's
    blind index, so the cache holds no address."""

    scope_attr = "account_throttle_scope"

    def get_cache_key(self, request: Request, view) -> str | None:
        email = request.data.get("email") if isinstance(request.data, dict) else None
        if not isinstance(email, str) or not email.strip():
            return None  # nothing to count against: validation answers the request
        return self.cache_format % {"scope": self.scope, "ident": blind_index(email)}


class RegisterView(AuthThrottleMixin, APIView):
    @extend_schema(request=RegisterSerializer, responses={201: UserSerializer})
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            with transaction.atomic():
                user = User.objects.create_user(data["email"], data["password"], name=data["name"])
        except (IntegrityError, DjangoValidationError):
            # Two registrations for the same address raced past validate_email.
            raise serializers.ValidationError({"email": ["A user with this email already exists."]}) from None
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenView(AuthThrottleMixin, APIView):
    throttle_classes = [ScopedRateThrottle, AccountThrottle]
    account_throttle_scope = "auth_account"

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenSerializer})
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        api_key, raw_key = ApiKey.issue(user, name=serializer.validated_data.get("name") or "API key")
        payload = {"token": raw_key, "prefix": api_key.prefix, "name": api_key.name, "created_at": api_key.created_at}
        return Response(TokenSerializer(payload).data)


class MeView(generics.RetrieveAPIView):
    serializer_class = UserSerializer

    def get_object(self) -> User:
        return self.request.user
