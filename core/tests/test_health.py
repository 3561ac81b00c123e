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
    ]
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
