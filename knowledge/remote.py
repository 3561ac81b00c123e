"""JSON over HTTP to OpenAI-compatible APIs (embeddings, chat completions) and Pinecone.

One place decides what a failure means: timeouts, refused connections, 429 and 5xx are
transient (`ServiceUnavailable`, with the server's Retry-After when it sends one); other
4xx are permanent (`ServiceError`). Messages name the service and the status, plus the
service's own explanation with every configured key cut out.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from core.http import ResponseTooLarge, read_capped, retry_after_seconds
from knowledge.errors import ServiceError, ServiceUnavailable, clean_remote_message

USER_AGENT = "Inflow/1.0 (knowledge base)"


def _explanation(body: bytes) -> str:
    """The human part of an error body: OpenAI's error.message, Pinecone's message, or text."""
    try:
        data = json.loads(body)
    except ValueError:
        return clean_remote_message(body.decode("utf-8", errors="replace"), 200)
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return clean_remote_message(error["message"], 200)
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str):
                return clean_remote_message(data[key], 200)
    return clean_remote_message(json.dumps(data), 200)


def request_json(
    method: str,
    url: str,
    *,
    service: str,
    timeout: float,
    headers: dict[str, str] | None = None,
    body: Any = None,
    params: dict[str, Any] | None = None,
    max_bytes: int = 16 * 1024 * 1024,
) -> Any:
    """Send a request and return the decoded JSON answer, or raise a KnowledgeError."""
    all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
    try:
        with (
            httpx.Client(timeout=timeout, trust_env=False) as client,
            client.stream(method, url, headers=all_headers, json=body, params=params) as response,
        ):
            raw = read_capped(response, max_bytes)
    except ResponseTooLarge:
        raise ServiceError(f"{service} sent an answer larger than {max_bytes // 1024} KB.") from None
    except httpx.TimeoutException:
        raise ServiceUnavailable(f"{service} did not answer within {timeout:g} s.") from None
    except httpx.HTTPError as exc:
        # Only the exception class: its text may contain the URL, which is configuration.
        raise ServiceUnavailable(f"{service} could not be reached ({type(exc).__name__}).") from None

    status = response.status_code
    if status == 429 or status >= 500:
        raise ServiceUnavailable(
            f"{service} answered {status}: {_explanation(raw)}",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            http_status=status,
        )
    if status >= 400:
        raise ServiceError(f"{service} refused the request ({status}): {_explanation(raw)}", http_status=status)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ServiceError(f"{service} answered {status} with a body that is not JSON.") from None
