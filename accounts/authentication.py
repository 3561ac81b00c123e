from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts.models import ApiKey


class ApiKeyAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`, checked against the stored SHA-256 of the key."""

    keyword = "Token"

    def authenticate_credentials(self, key: str):
        try:
            api_key = ApiKey.objects.active().select_related("user").get(key_hash=ApiKey.hash_key(key))
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from None
        api_key.touch()
        return api_key.user, api_key
