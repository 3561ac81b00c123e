"""Helpers for Meta tests: signed webhook bodies, payload builders and a fake Graph API."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.test import Client

from core.testing import FakeHTTPServer, RecordedRequest, Reply
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


def bearer(request: RecordedRequest) -> str:
    return request.headers.get("authorization", "").removeprefix("Bearer ")


class FakeGraph(FakeHTTPServer):
    """A Graph API that knows whose each token is (`owns`) and accepts every send.

    `GET /me` answers the way Meta does for the fields asked: `user_id`, `username` (and
    an app-scoped `id` no webhook uses) for Instagram User tokens; `id`, `name` for Page
    tokens. A token it does not know is refused with error 190. Both META_GRAPH_URL and
    META_INSTAGRAM_GRAPH_URL point at it (see `fake_graph`).
    """

    def __init__(self) -> None:
        self.owners: dict[str, tuple[str, str]] = {}
        super().__init__(self.answer)

    def owns(self, raw_token: str, account_id: str, name: str = "inflow.shop") -> None:
        self.owners[raw_token] = (account_id, name)

    def answer(self, request: RecordedRequest) -> Reply:
        if request.path == graph_path("me"):
            return self.me(request)
        return graph_ok(request)

    def me(self, request: RecordedRequest) -> Reply:
        owner = self.owners.get(bearer(request))
        if owner is None:
            return meta_error(190, message="Invalid OAuth access token - Cannot parse access token")
        return me_reply(request, *owner)


def me_reply(request: RecordedRequest, account_id: str, name: str = "inflow.shop") -> Reply:
    """Meta's answer to /me naming `account_id` in the fields the request asked for."""
    fields = ",".join(request.query.get("fields", [])).split(",")
    if "user_id" in fields:  # Instagram API with Instagram Login
        return Reply(200, {"user_id": account_id, "username": name, "id": "27000000000000001"})
    return Reply(200, {"id": account_id, "name": name})


@contextlib.contextmanager
def fake_graph(settings) -> Iterator[FakeGraph]:
    """A FakeGraph that both Graph API hosts point at, for the pytest `settings` fixture."""
    with FakeGraph() as server:
        settings.META_GRAPH_URL = server.url
        settings.META_INSTAGRAM_GRAPH_URL = server.url
        yield server
