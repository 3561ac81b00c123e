from __future__ import annotations

import pytest
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import ApiKey, User
from conftest import PASSWORD

pytestmark = pytest.mark.django_db


def register(anon, **overrides):
    payload = {"email": "new@example.com", "password": PASSWORD, "name": "New Person"} | overrides
    return anon.post("/api/v1/auth/register/", payload, format="json")


def test_register_creates_a_user_without_secrets(anon):
    response = register(anon, email="Fresh@Example.com")

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "fresh@example.com"
    assert body["role"] == "member"
    assert set(body) == {"id", "email", "name", "role", "created_at"}
    user = User.objects.get(pk=body["id"])
    assert user.check_password(PASSWORD)


def test_register_refuses_a_taken_email_in_any_case(anon, make_user):
    make_user(email="taken@example.com")
    response = register(anon, email="TAKEN@example.com")
    assert response.status_code == 400
    assert "already exists" in response.json()["detail"]


def test_register_applies_djangos_password_validators(anon):
    response = register(anon, password="12345678")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "password" in body["errors"]


def test_register_rejects_unknown_and_missing_fields(anon):
    unknown = register(anon, role="admin")
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == {"role": ["Unknown field."]}
    missing = anon.post("/api/v1/auth/register/", {"email": "x@example.com"}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()["errors"]) == {"password", "name"}
    assert not User.objects.exists()


def test_token_exchange_and_me(anon, user):
    response = anon.post("/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert token.startswith("inf_")
    stored = ApiKey.objects.get(user=user)
    assert stored.key_hash == ApiKey.hash_key(token)
    assert token not in {stored.prefix, stored.key_hash}

    anon.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    me = anon.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["email"] == user.email


def test_token_refuses_wrong_password_and_inactive_users(anon, make_user):
    user = make_user(email="locked@example.com")
    wrong = anon.post("/api/v1/auth/token/", {"email": user.email, "password": "nope"}, format="json")
    assert wrong.status_code == 400
    user.is_active = False
    user.save(update_fields=["is_active"])
    inactive = anon.post("/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
    assert inactive.status_code == 400
    assert not ApiKey.objects.exists()


def test_revoked_keys_and_disabled_users_are_refused(client_for, user):
    client = client_for(user)
    assert client.get("/api/v1/me/").status_code == 200
    ApiKey.objects.get(user=user).revoke()
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_me_needs_credentials(anon):
    response = anon.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["detail"]


def test_auth_endpoints_are_throttled(anon, user, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "3/min"})
    codes = [
        anon.post("/api/v1/auth/token/", {"email": user.email, "password": "wrong"}, format="json").status_code
        for _ in range(4)
    ]
    assert codes == [400, 400, 400, 429]
    assert "throttled" in anon.post("/api/v1/auth/register/", {}, format="json").json()["code"]
