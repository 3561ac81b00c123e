"""Per-user bookkeeping in the cache: which sessions a user has, so they can be ended.

Sessions live in Redis (the cache backend), where they cannot be listed by user. At login
the session key is remembered under `user:<id>:sessions`; every per-user cache key uses
the `user:<id>:` prefix, so a purge can find them all.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

MAX_REMEMBERED = 50


def user_key(user_id: int, name: str) -> str:
    return f"user:{user_id}:{name}"


def remember_session(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver."""
    session_key = getattr(request, "session", None) and request.session.session_key
    if not session_key:
        return
    key = user_key(user.pk, "sessions")
    keys = [k for k in cache.get(key, []) if k != session_key][-(MAX_REMEMBERED - 1) :]
    cache.set(key, [*keys, session_key], settings.SESSION_COOKIE_AGE)


def end_sessions(user_id: int) -> int:
    key = user_key(user_id, "sessions")
    session_keys = cache.get(key, [])
    for session_key in session_keys:
        SessionStore(session_key=session_key).delete()
    cache.delete(key)
    return len(session_keys)


def forget_user(user_id: int) -> int:
    """Delete the user's sessions, throttle histories and every `user:<id>:` cache key; returns keys removed."""
    removed = end_sessions(user_id)
    # DRF's throttles key an authenticated caller's history by user id.
    throttles = [
        SimpleRateThrottle.cache_format % {"scope": scope, "ident": user_id}
        for scope in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    ]
    removed += sum(cache.delete(key) for key in throttles)
    client = cache._cache.get_client(write=True)
    pattern = cache.make_key(user_key(user_id, "*"))
    for redis_key in client.scan_iter(match=pattern, count=500):
        removed += client.delete(redis_key)
    return removed
