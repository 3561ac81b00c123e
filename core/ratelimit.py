"""Rate limits for plain Django views (webhooks), kept in Redis.

A fixed window counter: one INCR per request in a key that expires with the window. DRF's
throttles cover the API; webhooks are plain views and need to stay cheap (two round trips
to Redis, no history list).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps

import redis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from rest_framework import throttling

logger = logging.getLogger(__name__)

UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/min' -> (600, 60)."""
    count, _, unit = rate.partition("/")
    return int(count), UNITS[unit]


def client_ip(request: HttpRequest) -> str:
    # DRF's rule, so NUM_PROXIES means the same thing for the API and for webhooks.
    return throttling.BaseThrottle().get_ident(request)


def hit(scope: str, ident: str, rate: str) -> float | None:
    """Count one request; None if allowed, else the seconds until the window resets.

    With Redis unreachable the request is allowed (and a warning logged): a limit exists
    to protect the service, and refusing everyone while Redis restarts would not.
    """
    limit, window = parse_rate(rate)
    now = time.time()
    window_start = int(now // window * window)
    key = f"ratelimit:{scope}:{ident}:{window_start}"
    try:
        cache.add(key, 0, timeout=window + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window + 1)
            count = 1
    except redis.RedisError as exc:
        logger.warning("rate limit %s not applied: Redis unreachable (%s)", scope, type(exc).__name__)
        return None
    if count > limit:
        return window_start + window - now
    return None


class ScopedRateThrottle(throttling.ScopedRateThrottle):
    """DRF's scoped throttle, allowing requests while Redis is unreachable (see hit())."""

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except redis.RedisError as exc:
            logger.warning("throttle %s not applied: Redis unreachable (%s)", self.scope, type(exc).__name__)
            return True


def throttled(wait: float) -> JsonResponse:
    """The 429 of a rate limit: JSON, with Retry-After in whole seconds."""
    response = JsonResponse({"detail": f"Too many requests; retry in {wait:.0f} s.", "code": "throttled"}, status=429)
    response["Retry-After"] = str(max(1, round(wait)))
    return response


def over_limit(scope: str, ident: str) -> JsonResponse | None:
    """Count a request against REST_FRAMEWORK's rate for `scope`: the 429 past it, else None."""
    wait = hit(scope, ident, settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope])
    return None if wait is None else throttled(wait)


def rate_limited(scope: str, key: Callable[[HttpRequest], str] = client_ip, methods: tuple[str, ...] | None = None):
    """View decorator: 429 JSON with Retry-After past REST_FRAMEWORK's rate for `scope`.

    With `methods`, only requests of those methods count (a sign-in form's POST, not its GET).
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            counted = methods is None or request.method in methods
            if counted and (refused := over_limit(scope, key(request))):
                return refused
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
