from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings

from core import views

pytestmark = pytest.mark.django_db


def test_healthy(anon):
    response = anon.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"]
    assert body["redis"]["ok"]


def test_redis_down_is_a_503(anon, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    views._redis_client.cache_clear()
    try:
        response = anon.get("/healthz")
    finally:
        views._redis_client.cache_clear()
    assert response.status_code == 503
    assert response.json()["redis"] == {"ok": False}
    assert response.json()["database"]["ok"] is True


def test_rate_limits_step_aside_while_redis_is_down(anon, api, settings, caplog):
    """Limits protect the service; with their counters unreachable requests still get answers."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"},
    }
    token = anon.post("/api/v1/auth/token/", {"email": "nobody@example.com", "password": "x"}, format="json")
    search = api.get("/api/v1/knowledge/search/", {"q": "opening hours"})
    assert (token.status_code, search.status_code) == (400, 200)
    assert "not applied: Redis unreachable" in caplog.text


def test_database_down_is_a_503():
    """A separate process whose database URL points at a closed port."""
    code = (
        "import django; django.setup();"
        "from django.test import Client;"
        "r = Client(HTTP_HOST='localhost').get('/healthz');"
        "print(r.status_code, r.json()['database']['ok'], r.json()['redis']['ok'])"
    )
    env = os.environ | {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/inflow",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.stdout.split() == ["503", "False", "True"], result.stderr[-2000:]


def test_security_headers_on_every_response(anon):
    responses = [
        anon.get(path) for path in ["/healthz", "/api/v1/me/", "/api/v1/missing/", "/admin/login/", "/api/docs/"]
    ]
    responses += [
        anon.post("/webhooks/meta/", b"{}", content_type="application/json"),
        anon.get("/webhooks/meta/", {"hub.mode": "subscribe"}),
        anon.post("/webhooks/flows/1/nope/", {}, format="json"),
        anon.post("/api/v1/auth/token/", b"{bad", content_type="application/json"),
        # Answered by middleware around Django's own clickjacking middleware.
        anon.get("/api/v1/flows/?q=%00"),
        anon.get("/api/v1/me/", HTTP_X_TRACE="a\x00b"),
        anon.post("/api/v1/auth/token/", b"{}", content_type="application/json", CONTENT_LENGTH="999999999"),
        anon.get("/healthz", HTTP_HOST="not-ours.example"),
    ]
    assert [response.status_code for response in responses[-4:]] == [400, 400, 413, 400]
    for response in responses:
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in response["Content-Security-Policy"]
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_cors_is_closed_by_default(anon, user, client_for):
    api = client_for(user)
    preflight = anon.options(
        "/api/v1/flows/", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in preflight
    response = api.get("/api/v1/me/", HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response


# --- Production-shaped configuration -------------------------------------------------------


def run_check(**env: str) -> subprocess.CompletedProcess:
    production = {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "inflow.example.com",
        "SECRET_KEY": "s" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",
        "PGCRYPTO_KEY": "p" * 10 + "0123456789abcdefghijklmnopqrstuvwxyz",
        "BLIND_INDEX_KEY": "b" * 10 + "0123456789abcdefghijklmnopqrstuvwxyz",
        "META_APP_SECRET": "meta-app-secret-0123456789",
        "META_VERIFY_TOKEN": "verify-token-0123",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=os.environ | production | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_production_refuses_to_start_without_its_secrets():
    assert run_check().returncode == 0
    # Empty, not absent: the developer .env would otherwise fill them in.
    for name in ("SECRET_KEY", "PGCRYPTO_KEY"):
        result = run_check(**{name: ""})
        assert result.returncode != 0
        assert f"{name} is required when DEBUG is off" in result.stderr


def test_sessions_live_in_redis_for_24_hours(user):
    from django.contrib.sessions.backends.cache import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.cache import cache
    from django.test import Client

    client = Client()
    client.force_login(user)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    redis_key = cache.make_key(SessionStore(session_key=session_key).cache_key)
    ttl = cache._cache.get_client().ttl(redis_key)
    assert 24 * 3600 - 60 <= ttl <= 24 * 3600
    assert not Session.objects.exists()


def test_celery_delivers_at_least_once_and_speaks_json_only():
    from config.celery import app

    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert (conf.task_serializer, conf.result_serializer, list(conf.accept_content)) == ("json", "json", ["json"])
    assert conf.result_backend == "django-db"
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
