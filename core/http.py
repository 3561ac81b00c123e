"""Small HTTP helpers shared by every client of a third-party service."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

import httpx
from django.utils import timezone


class ResponseTooLarge(Exception):
    """A response body went past the caller's cap; the rest was not read."""


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds: either form HTTP allows (delta-seconds or a date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def read_capped(response: httpx.Response, limit: int) -> bytes:
    """A streamed response's body, reading no more than `limit` bytes of it."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge
        chunks.append(chunk)
    return b"".join(chunks)
