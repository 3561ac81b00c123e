from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import RejectUnknownFieldsMixin
from tokens.models import ApiToken


@extend_schema_field({"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 100}})
class ScopesField(serializers.JSONField):
    """JSON in and out; validate_scopes below is the rule the schema above states."""


class ApiTokenSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    # Meta's tokens are printable ASCII without spaces. Anything else could never go out in
    # an Authorization header: refused here rather than as an odd failure at send time.
    access_token = serializers.RegexField(r"^[\x21-\x7e]+\Z", write_only=True, max_length=4096, trim_whitespace=False)
    # [0-9], not \d (which takes any script's digits), and \Z, not $ (which takes a final
    # newline); untrimmed, so what is checked is what is stored.
    account_id = serializers.RegexField(
        r"^[0-9]{1,64}\Z", max_length=64, trim_whitespace=False, help_text="Numeric Meta account id."
    )
    scopes = ScopesField(required=False, help_text="The permissions granted to the token.")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "provider",
            "account_id",
            "account_name",
            "access_token",
            "token_hint",
            "token_type",
            "scopes",
            "expires_at",
            "last_refreshed_at",
            "status",
            "status_reason",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "account_name",
            "token_hint",
            "last_refreshed_at",
            "status",
            "status_reason",
            "created_at",
        ]
        # Uniqueness across users is checked by services.connect_token, which must not reveal
        # another user's connection beyond "already connected".
        validators: list = []

    def validate_scopes(self, value):
        if not isinstance(value, list) or not all(isinstance(s, str) and 0 < len(s) <= 100 for s in value):
            raise serializers.ValidationError("Scopes must be a list of strings.")
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 scopes.")
        return value
