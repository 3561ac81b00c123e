"""Health check and JSON error pages for non-admin URLs."""

from __future__ import annotations

import logging
import time
from functools import cache

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


def json_error(status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


def _wants_html(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def bad_request(request: HttpRequest, exception: Exception | None = None):
    if _wants_html(request):
        return defaults.bad_request(request, exception)
    return json_error(400, "Bad request.", "bad_request")


def permission_denied(request: HttpRequest, exception: Exception | None = None):
    if _wants_html(request):
        return defaults.permission_denied(request, exception)
    return json_error(403, "You do not have permission to perform this action.", "permission_denied")


def page_not_found(request: HttpRequest, exception: Exception | None = None):
    if _wants_html(request):
        return defaults.page_not_found(request, exception)
    return json_error(404, "Not found.", "not_found")


def server_error(request: HttpRequest):
    if _wants_html(request):
        return defaults.server_error(request)
    return json_error(500, "Internal server error. The incident has been logged.", "server_error")


@cache
def _redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def _probe(check) -> dict:
    started = time.perf_counter()
    try:
        check()
    except Exception:
        # Details go to the log only: this endpoint is public.
        logger.exception("health check failed: %s", check.__name__)
        return {"ok": False}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    _redis_client().ping()


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    database = _probe(_check_database)
    redis_status = _probe(_check_redis)
    healthy = database["ok"] and redis_status["ok"]
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "database": database, "redis": redis_status},
        status=200 if healthy else 503,
    )
