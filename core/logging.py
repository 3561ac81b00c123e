"""A logging filter that keeps secrets and personal data out of every log line."""

from __future__ import annotations

import logging
import re
from functools import cache

from django.conf import settings

REDACTED = "[redacted]"

_PATTERNS = [
    # The secret part of generic flow webhook URLs (Django logs the path of 4xx responses).
    re.compile(r"(/webhooks/flows/\d+/)[^/\s\"']+"),
    # API keys and bearer tokens in headers or text.
    re.compile(r"(?i)\b((?:token|bearer)\s+)[A-Za-z0-9_\-\.]{16,}"),
    # access_token=..., "access_token": "...", password=..., etc.
    re.compile(
        r"(?i)([\"']?(?:access_token|refresh_token|password|secret|api_key|apikey|client_secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"
    ),
    # Email addresses.
    re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),
]


@cache
def _configured_secrets() -> tuple[str, ...]:
    names = ["SECRET_KEY", "PGCRYPTO_KEY", "BLIND_INDEX_KEY", "META_APP_SECRET", "OPENAI_API_KEY"]
    values = [getattr(settings, name, "") for name in names]
    values += list(getattr(settings, "PGCRYPTO_OLD_KEYS", {}).values())
    return tuple(v for v in values if v and len(v) >= 8)


def redact(text: str) -> str:
    for secret in _configured_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def _redact_record(record: logging.LogRecord) -> None:
    message = record.getMessage()
    cleaned = redact(message)
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if cleaned != message:
        record.msg, record.args = cleaned, None


def install_record_factory() -> None:
    """Redact every log record as it is created, whatever logger or handler it meets.

    A handler filter only protects its own handler; a record factory also covers
    third-party handlers (pytest's capture, error trackers, Celery's).
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "inflow_redacting", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    factory.inflow_redacting = True
    logging.setLogRecordFactory(factory)


class RedactSecretsFilter(logging.Filter):
    """Kept on the console handler for records made before the factory was installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True
