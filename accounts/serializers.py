from __future__ import annotations

from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import User
from core.api import RejectUnknownFieldsMixin


class UserSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(read_only=True)
    name = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "created_at"]
        read_only_fields = fields


class RegisterSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    name = serializers.CharField(max_length=150)

    def validate_email(self, value: str) -> str:
        if User.objects.email_taken(value):
            raise serializers.ValidationError("A user with this email already exists.")
        return value

    def validate(self, attrs: dict) -> dict:
        candidate = User(name=attrs["name"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from None
        return attrs


class TokenRequestSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    name = serializers.CharField(max_length=100, required=False, help_text="A label for the new key.")

    def validate(self, attrs: dict) -> dict:
        user = authenticate(self.context["request"], email=attrs["email"], password=attrs["password"])
        if user is None:
            raise serializers.ValidationError("Unable to log in with the provided email and password.")
        attrs["user"] = user
        return attrs


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The API key. It is shown once; store it safely.")
    prefix = serializers.CharField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
