"""Helpers for Meta tests: signed webhook bodies, payload builders and a fake Graph API."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from django.conf import settings
from django.test import Client

from core.testing import RecordedRequest, Reply
from flows.models import Flow
from tokens.models import ApiToken
from tokens.webhooks import expected_signature

IG_ACCOUNT = "17841400000000001"
PAGE_ID = "100000000000001"
RAW_TOKEN = "IGQVJ-secret-access-token-value-abcdefghij"
_ids = itertools.count(1)


def unique_id(prefix: str = "1790000000") -> str:
    return f"{prefix}{next(_ids):06d}"


def comment_payload(
    text: str = "What's the price?",
    *,
    comment_id: str | None = None,
    from_id: str = "5550001",
    username: str = "jane.doe",
    media_id: str = "18000000000000001",
    account_id: str = IG_ACCOUNT,
    time_s: int | None = None,
) -> dict:
    return {
        "object": "instagram",
        "entry": [
            {
                "id": account_id,
                "time": int(time.time()) if time_s is None else time_s,
                "changes": [
                    {
                        "field": "comments",
                        "value": {
                            "from": {"id": from_id, "username": username},
                            "media": {"id": media_id, "media_product_type": "FEED"},
                            "id": comment_id or unique_id(),
                            "text": text,
                        },
                    }
                ],
            }
        ],
    }


def message_payload(
    text: str | None = "hello",
    *,
    mid: str | None = None,
    sender: str = "6660001",
    account_id: str = IG_ACCOUNT,
    meta_object: str = "instagram",
    echo: bool = False,
    attachments: list[dict] | None = None,
    timestamp_ms: int | None = None,
) -> dict:
    message: dict[str, Any] = {"mid": mid or f"aWdfZAG1faXRlbToxOklH{unique_id()}"}
    if text is not None:
        message["text"] = text
    if echo:
        message["is_echo"] = True
    if attachments is not None:
        message["attachments"] = attachments
    return {
        "object": meta_object,
        "entry": [
            {
                "id": account_id,
                "time": int(time.time() * 1000),
                "messaging": [
                    {
                        "sender": {"id": account_id if echo else sender},
                        "recipient": {"id": sender if echo else account_id},
                        "timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
                        "message": message,
                    }
                ],
            }
        ],
    }


def post_signed(client: Client, payload: dict | bytes, *, signature: str | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {}
    signature = expected_signature(body) if signature is None else signature
    if signature:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    return client.post("/webhooks/meta/", data=body, content_type="application/json", **headers)


def connect(user, *, provider: str = "instagram", account_id: str = IG_ACCOUNT, raw_token: str = RAW_TOKEN, **fields):
    token = ApiToken(user=user, provider=provider, account_id=account_id, **fields)
    token.set_token(raw_token)
    token.save()
    return token


def make_flow(user, trigger: dict, actions: list[dict], status: str = Flow.Status.ACTIVE) -> Flow:
    nodes = [{"id": "t", **trigger}, *actions]
    chain = ["t", *[n["id"] for n in actions]]
    edges = [{"source": a, "target": b} for a, b in itertools.pairwise(chain)]
    flow = Flow(user=user, name="meta flow", flow_data={"nodes": nodes, "edges": edges}, status=status)
    assert flow.graph_errors(complete=True) == []
    flow.save()
    return flow


def graph_path(path: str) -> str:
    return f"/{settings.META_GRAPH_VERSION}/{path}"


def meta_error(code: int, status: int = 400, message: str = "Something went wrong", **extra: Any) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "OAuthException", "code": code, **extra}})


def graph_ok(request: RecordedRequest) -> Reply:
    """A Graph API that accepts every send, like Meta does on a good day."""
    if request.path.endswith("/messages"):
        recipient = request.json()["recipient"]
        return Reply(200, {"recipient_id": recipient.get("id", "5550001"), "message_id": f"m_{unique_id()}"})
    if request.path.endswith("/replies"):
        return Reply(200, {"id": unique_id("1780")})
    return Reply(404, {"error": {"message": "Unknown path", "code": 803}})
