"""Rate limits for plain Django views (webhooks), kept in Redis.

A fixed window counter: one INCR per request in a key that expires with the window. DRF's
throttles cover the API; webhooks are plain views and need to stay cheap (two round trips
to Redis, no history list).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from rest_framework.throttling import BaseThrottle

UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/min' -> (600, 60)."""
    count, _, unit = rate.partition("/")
    return int(count), UNITS[unit]


def client_ip(request: HttpRequest) -> str:
    # DRF's rule, so NUM_PROXIES means the same thing for the API and for webhooks.
    return BaseThrottle().get_ident(request)


def hit(scope: str, ident: str, rate: str) -> float | None:
    """Count one request; None if allowed, else the seconds until the window resets."""
    limit, window = parse_rate(rate)
    now = time.time()
    window_start = int(now // window * window)
    key = f"ratelimit:{scope}:{ident}:{window_start}"
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window + 1)
        count = 1
    if count > limit:
        return window_start + window - now
    return None


def rate_limited(scope: str, key: Callable[[HttpRequest], str] = client_ip):
    """View decorator: 429 JSON with Retry-After past REST_FRAMEWORK's rate for `scope`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]
            wait = hit(scope, key(request), rate)
            if wait is not None:
                response = JsonResponse(
                    {"detail": f"Too many requests; retry in {wait:.0f} s.", "code": "throttled"}, status=429
                )
                response["Retry-After"] = str(max(1, round(wait)))
                return response
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
