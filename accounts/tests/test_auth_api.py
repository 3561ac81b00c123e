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
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "auth", "3/min")
    codes = [
        anon.post("/api/v1/auth/token/", {"email": user.email, "password": "wrong"}, format="json").status_code
        for _ in range(4)
    ]
    assert codes == [400, 400, 400, 429]
    assert "throttled" in anon.post("/api/v1/auth/register/", {}, format="json").json()["code"]


def test_one_account_cannot_be_guessed_from_many_addresses(anon, make_user, monkeypatch):
    make_user(email="target@example.com")
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "auth_account", "3/min")

    def attempt(email: str, address: str) -> int:
        body = {"email": email, "password": "wrong"}
        return anon.post("/api/v1/auth/token/", body, format="json", REMOTE_ADDR=address).status_code

    addresses = [f"203.0.113.{n}" for n in range(1, 5)]
    assert [attempt("target@example.com", address) for address in addresses] == [400, 400, 400, 429]
    assert attempt(" TARGET@example.com", "198.51.100.1") == 429  # the same account, however spelt
    assert attempt("someone.else@example.com", "203.0.113.4") == 400


def test_behind_the_compose_proxy_each_client_has_its_own_throttle(anon, settings, monkeypatch):
    """docker-compose.yml puts web behind one TLS proxy: every request comes from its address."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("write_dotenv", settings.BASE_DIR / "scripts" / "write_dotenv.py")
    write_dotenv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(write_dotenv)
    example = (settings.BASE_DIR / "docker" / ".env.example").read_text().splitlines()
    assert "NUM_PROXIES=1" in write_dotenv.docker()
    assert "NUM_PROXIES=1" in example

    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "auth", "2/min")

    def attempt(client_address: str) -> int:
        return anon.post(
            "/api/v1/auth/token/",
            {"email": "nobody@example.com", "password": "wrong"},
            format="json",
            REMOTE_ADDR="172.18.0.5",  # the proxy
            HTTP_X_FORWARDED_FOR=client_address,
        ).status_code

    assert [attempt("203.0.113.7") for _ in range(3)] == [400, 400, 429]
    assert attempt("198.51.100.9") == 400


def test_createsuperuser_checks_the_email_like_the_api(make_user, monkeypatch):
    """The encrypted email column is not unique itself; createsuperuser must not crash on it."""
    from django.core.management import CommandError, call_command

    make_user(email="root@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    for email, message in [("ROOT@example.com", "already exists"), ("not-an-email", "valid email")]:
        with pytest.raises(CommandError, match=message):
            call_command("createsuperuser", interactive=False, email=email, name="Root", verbosity=0)
    call_command("createsuperuser", interactive=False, email="Boss@Example.com", name="Boss", verbosity=0)
    boss = User.objects.get_by_email("boss@example.com")
    assert (boss.is_staff, boss.is_superuser, boss.role) == (True, True, User.Role.ADMIN)
    assert User.objects.count() == 2


def test_the_compose_database_gets_its_password_and_none_of_the_keys(settings, tmp_path):
    import subprocess
    import sys

    import yaml

    app_env = tmp_path / ".env"
    subprocess.run([sys.executable, settings.BASE_DIR / "scripts" / "write_dotenv.py", "--docker", app_env], check=True)
    app = dict(line.split("=", 1) for line in app_env.read_text().splitlines() if "=" in line and line[0] != "#")
    database = dict(
        line.split("=", 1) for line in (tmp_path / "postgres.env").read_text().splitlines() if line[:1] != "#"
    )
    assert set(database) == {"POSTGRES_PASSWORD"}
    assert f":{database['POSTGRES_PASSWORD']}@postgres:" in app["DATABASE_URL"]
    assert "PGCRYPTO_KEY" in app
    assert "POSTGRES_PASSWORD" not in app
    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    assert compose["services"]["postgres"]["env_file"] == "docker/postgres.env"
