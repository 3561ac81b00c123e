"""`/webhooks/meta/`: Meta's verification handshake and signed event intake.

The POST path is kept short because Meta expects a fast 200 and retries otherwise:
check the signature over the raw body (constant time, before anything else is read or
stored), parse, insert one `meta_webhook_deliveries` row, and nudge a Celery worker once
the row is committed. Matching flows and starting executions happen in the worker
(tokens.services.process_delivery). Redis is never the only copy: if the nudge is lost, the
beat sweeper finds the unprocessed row.

Rate limit: signed deliveries are counted in a Redis fixed window per minute across all web
processes (META_WEBHOOK_RATE_LIMIT); above it Meta gets a 429 and redelivers later. It
guards the database against a runaway sender (a leaked app secret, a replay loop), not
against strangers: an unsigned request costs one HMAC and never touches Redis or the
database. When Redis is down the limiter lets deliveries through: storing them matters more.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from functools import cache

import redis
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import ParseError

from core.api import loads_strict
from core.views import json_error
from tokens.models import MetaWebhookDelivery

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


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def over_rate_limit() -> bool:
    limit = settings.META_WEBHOOK_RATE_LIMIT
    if limit <= 0:
        return False
    key = f"inflow:meta-webhook-rate:{int(time.time() // 60)}"
    try:
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = pipe.execute()
    except redis.RedisError:
        return False
    return count > limit


def _nudge(delivery_id: int) -> None:
    from tokens.tasks import enqueue_delivery

    enqueue_delivery(delivery_id)


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
    delivery = MetaWebhookDelivery.objects.create(object=meta_object, payload=payload, enqueued_at=timezone.now())
    transaction.on_commit(lambda: _nudge(delivery.pk))
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
