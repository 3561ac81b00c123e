"""`/webhooks/meta/`: Meta's verification handshake and signed event intake.

The POST path is kept short because Meta expects a fast 200 and retries otherwise:
check the signature over the raw body (constant time, before anything else is read or
stored), parse, insert one `meta_webhook_deliveries` row, and once it is committed nudge a
Celery worker (at most one queued nudge at a time, see tokens.tasks.nudge). Matching flows
and starting executions happen in the worker (tokens.services). Redis is never the only
copy of an event: if a nudge is lost, the beat sweeper finds the pending rows.

Rate limit: each web process accepts at most META_WEBHOOK_RATE_LIMIT signed deliveries per
minute; above it Meta gets a 429 and redelivers later. It guards the database against a
runaway sender (a leaked app secret, a replay loop), not against strangers: an unsigned
request costs one HMAC and never touches Redis or the database. The counter lives in the
process, so the limit costs no network round trip on the hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import DataError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ParseError

from core.api import loads_strict
from core.views import json_error
from tokens.models import MetaWebhookDelivery
from tokens.tasks import nudge

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
SUBSCRIBED_OBJECTS = frozenset({"instagram", "page"})
CHALLENGE = re.compile(r"^[A-Za-z0-9._-]{1,256}$")


def expected_signature(body: bytes, secret: str | None = None) -> str:
    digest = hmac.new((secret or settings.META_APP_SECRET).encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_is_valid(body: bytes, header: str) -> bool:
    if not header:
        return False
    # Both sides are ASCII bytes, so compare_digest runs in time independent of the content.
    return hmac.compare_digest(expected_signature(body).encode(), header.strip().lower().encode("ascii", "replace"))


class MinuteWindow:
    """A fixed one-minute window counter, shared by the threads of one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._minute = -1
        self._count = 0

    def hit(self, limit: int) -> bool:
        """Count one request; False when it is over the limit."""
        minute = int(self._clock() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._count = minute, 0
            self._count += 1
            return self._count <= limit


_window = MinuteWindow()


def over_rate_limit() -> bool:
    limit = settings.META_WEBHOOK_RATE_LIMIT
    return limit > 0 and not _window.hit(limit)


def _handshake(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    token_ok = hmac.compare_digest(token.encode(), settings.META_VERIFY_TOKEN.encode())
    if mode != "subscribe" or not token_ok:
        return json_error(403, "Verification failed.", "verification_failed")
    if not CHALLENGE.match(challenge):
        return json_error(400, "hub.challenge is missing or malformed.", "invalid")
    return HttpResponse(challenge, content_type="text/plain")


def _receive(request: HttpRequest) -> HttpResponse:
    body = request.body
    if not signature_is_valid(body, request.headers.get(SIGNATURE_HEADER, "")):
        return json_error(403, f"Missing or invalid {SIGNATURE_HEADER} signature.", "invalid_signature")
    try:
        payload = loads_strict(body)
    except ParseError as exc:
        return json_error(400, str(exc.detail), "parse_error")
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        return json_error(400, 'The body must be an object with an "entry" list.', "invalid")
    meta_object = payload.get("object")
    if meta_object not in SUBSCRIBED_OBJECTS or not payload["entry"]:
        return JsonResponse({"status": "ignored"})
    if over_rate_limit():
        return json_error(429, "Too many deliveries; retry later.", "throttled")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:  # json.loads also reads UTF-16 and UTF-32; store it re-encoded
        text = json.dumps(payload)
    try:
        # A single autocommitted INSERT: no BEGIN/COMMIT round trips on the hot path.
        MetaWebhookDelivery.store(meta_object, text)
    except DataError:  # e.g. a lone surrogate (\ud800): valid for Python, not for jsonb
        return json_error(400, "The body contains text PostgreSQL cannot store.", "invalid")
    # Runs at once in autocommit mode, after the commit inside an atomic block.
    transaction.on_commit(nudge)
    return JsonResponse({"status": "received"})


@csrf_exempt
def meta_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _handshake(request)
    if request.method == "POST":
        return _receive(request)
    response = json_error(405, f'Method "{request.method}" not allowed.', "method_not_allowed")
    response["Allow"] = "GET, POST"
    return response
