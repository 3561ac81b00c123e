"""Small HTTP helpers shared by every client of a third-party service."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from django.utils import timezone


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
