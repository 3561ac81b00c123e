"""A small Graph API client: the calls Inflow's Meta nodes and token refresh make.

URLs come from settings (`META_GRAPH_URL`, `META_INSTAGRAM_GRAPH_URL`) with the API version
from `META_GRAPH_VERSION` in one place, so tests point them at a local server. Each token
is sent to its own host: `instagram` tokens are Instagram User tokens (Business Login for
Instagram, the kind `ig_refresh_token` refreshes), which only graph.instagram.com accepts;
graph.facebook.com refuses them with error 190. `facebook` tokens are Page tokens for
graph.facebook.com. The token travels in the Authorization header (the refresh endpoint
only takes it as the `access_token` parameter); it is never part of an error message, a
log line or a result.

Meta's errors (`{"error": {"code", "error_subcode", "message", ...}}`) become the engine's
exceptions:
- 190 / 102 (OAuthException: expired, revoked, password changed) → the token is marked
  `expired` and the step fails with "reconnect it".
- 4, 17, 32, 613, 80001-80014 (app, user, page and business-use-case rate limits), 1, 2,
  1200, `is_transient`, HTTP 429 and 5xx → TransientError: the engine retries with backoff,
  honouring Retry-After or the business-use-case `estimated_time_to_regain_access`.
- 10 and 200-299 (permissions), everything else → PermanentError with Meta's message.
A connection that failed before the request was sent is retried; a timeout after it was
sent is not, because the message may have gone out (no duplicate DMs).

`identify` asks Meta whose a token is before it is connected (GET /me). It changes nothing
at Meta, so any failure to get an answer is simply "try again"; it raises TokenRefusedError
(the client's token is no good) or MetaUnavailableError (Meta's side), never the engine's
exceptions, and marks nothing: the token is not stored yet.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
from django.conf import settings

from core.http import retry_after_seconds
from core.logging import redact
from flows.nodes import PermanentError, TransientError
from tokens.models import ApiToken

USER_AGENT = "Inflow/1.0 (+Meta Graph API)"
TOKEN_CODES = frozenset({102, 190})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
# 1200: Messenger's "Temporary send message failure. Please try again later."
TRANSIENT_CODES = frozenset({1, 2, 1200})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
MAX_MESSAGE = 300


class TokenExpiredError(PermanentError):
    """Meta refused the token itself; the account has to be reconnected."""


class MaybeSentError(PermanentError):
    """The request left but no answer came back: it may have taken effect."""


@cache
def _client_for(pid: int) -> httpx.Client:
    # One pooled client per process (Celery forks its pool after import).
    return httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False)


def client() -> httpx.Client:
    return _client_for(os.getpid())


def graph_url(path: str, base: str | None = None) -> str:
    return f"{base or settings.META_GRAPH_URL}/{settings.META_GRAPH_VERSION}/{path.lstrip('/')}"


def base_url(provider: str) -> str:
    """The Graph API host that accepts this provider's tokens (see the module docstring)."""
    if provider == ApiToken.Provider.INSTAGRAM:
        return settings.META_INSTAGRAM_GRAPH_URL
    return settings.META_GRAPH_URL


def account_label(token: ApiToken) -> str:
    return f"The {token.get_provider_display()} token for account {token.account_id}"


def _error_body(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds Meta asks us to wait: Retry-After, or the business-use-case usage header."""
    seconds = retry_after_seconds(response.headers.get("retry-after"))
    if seconds is not None:
        return seconds
    usage = response.headers.get("x-business-use-case-usage")
    if usage:
        try:
            minutes = [
                float(limit.get("estimated_time_to_regain_access") or 0)
                for limits in json.loads(usage).values()
                for limit in limits
            ]
        except (ValueError, AttributeError, TypeError):
            minutes = []
        if minutes and max(minutes) > 0:
            return max(minutes) * 60
    return None


def _meta_message(error: dict) -> str:
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    return redact(message)[:MAX_MESSAGE]


@dataclass(frozen=True)
class Failure:
    """What an unsuccessful Graph API answer says, read once for every caller."""

    code: int | None  # Meta's error code, when the body has Meta's error shape
    detail: str  # "Meta error <code>: <message>" or "HTTP <status>", safe to show
    rate_limited: bool
    transient: bool  # worth retrying later: 5xx, codes 1, 2, 1200, `is_transient`


def _failure(response: httpx.Response) -> Failure:
    error = _error_body(response)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    detail = f"Meta error {code}: {_meta_message(error)}" if code is not None else f"HTTP {response.status_code}"
    return Failure(
        code=code,
        detail=detail,
        rate_limited=code in RATE_LIMIT_CODES or response.status_code == 429,
        transient=code in TRANSIENT_CODES or error.get("is_transient") is True or response.status_code >= 500,
    )


def raise_for_error(response: httpx.Response, token: ApiToken, what: str) -> None:
    """Map an unsuccessful Graph API answer to TokenExpiredError, TransientError or PermanentError."""
    if response.is_success:
        return
    failure = _failure(response)
    code, detail = failure.code, failure.detail
    if code in TOKEN_CODES or response.status_code == 401:
        reason = f"Meta refused the token ({detail}) while {what}."
        token.mark(ApiToken.Status.EXPIRED, reason)
        raise TokenExpiredError(f"{account_label(token)} has expired or was revoked; reconnect it. {reason}")
    if failure.rate_limited:
        raise TransientError(f"Meta rate limit while {what} ({detail}).", retry_after=_retry_after(response))
    if failure.transient:
        raise TransientError(f"Meta is temporarily unavailable while {what} ({detail}).")
    if code in PERMISSION_CODES:
        raise PermanentError(f"Meta refused the permission for {what} ({detail}); check the app's permissions.")
    raise PermanentError(f"Meta refused {what} ({detail}).")


def _send(method: str, url: str, token: ApiToken, what: str, **kwargs: Any) -> dict:
    timeout = kwargs.pop("timeout", settings.META_HTTP_TIMEOUT)
    try:
        response = client().request(method, url, timeout=timeout, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # Nothing was sent: safe to try again.
        raise TransientError(f"Could not reach Meta while {what} ({type(exc).__name__}).") from None
    except httpx.TimeoutException:
        raise MaybeSentError(
            f"Meta did not answer in time while {what}; the request may have gone through, so it is not repeated."
        ) from None
    except httpx.TransportError as exc:
        raise MaybeSentError(
            f"The connection to Meta broke while {what} ({type(exc).__name__}); not repeated to avoid a duplicate."
        ) from None
    raise_for_error(response, token, what)
    try:
        body = response.json()
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


def post(token: ApiToken, path: str, payload: dict, *, what: str, timeout: float | None = None) -> dict:
    """POST JSON to the Graph API as the token's account."""
    return _send(
        "POST",
        graph_url(path, base_url(token.provider)),
        token,
        what,
        json=payload,
        headers={"Authorization": f"Bearer {token.access_token}"},
        timeout=min(timeout or settings.META_HTTP_TIMEOUT, settings.META_HTTP_TIMEOUT),
    )


def refresh_long_lived_token(token: ApiToken) -> dict:
    """Exchange a long-lived Instagram token for a fresh one (valid 60 days).

    GET {META_INSTAGRAM_GRAPH_URL}/refresh_access_token?grant_type=ig_refresh_token
    Returns Meta's `{"access_token", "token_type", "expires_in"}`.
    """
    body = _send(
        "GET",
        f"{settings.META_INSTAGRAM_GRAPH_URL}/refresh_access_token",
        token,
        "refreshing the token",
        params={"grant_type": "ig_refresh_token", "access_token": token.access_token},
    )
    if not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise PermanentError("Meta's refresh answer carried no access token.")
    return body


# --- Whose token is it? -------------------------------------------------------------------

# The /me fields naming the account, per provider. For Instagram User tokens (Instagram API
# with Instagram Login) `user_id` is the Instagram professional account id, the one webhooks
# carry as entry[].id; `id` there is an app-scoped user id that no webhook uses. For Page
# tokens `id` is the Page id.
ME_FIELDS = {ApiToken.Provider.INSTAGRAM: ("user_id", "username"), ApiToken.Provider.FACEBOOK: ("id", "name")}
MAX_ACCOUNT_NAME = 200


@dataclass(frozen=True)
class Identity:
    account_id: str
    name: str  # the Instagram username or the Page name; "" when Meta sent none


class TokenRefusedError(Exception):
    """Meta refused a token that was being connected: invalid, expired, revoked or without permission."""


class MetaUnavailableError(Exception):
    """Meta could not say whose a token is right now: unreachable, overloaded, rate limited, or a
    malformed answer (`bad_answer`)."""

    def __init__(self, message: str, *, retry_after: float | None = None, bad_answer: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.bad_answer = bad_answer


def identify(provider: str, raw_token: str) -> Identity:
    """The account a token belongs to, as Meta says: `GET /{version}/me` with the token.

    Instagram tokens go to META_INSTAGRAM_GRAPH_URL (`fields=user_id,username`), Page tokens
    to META_GRAPH_URL (`fields=id,name`); the token travels in the Authorization header.
    """
    id_field, name_field = ME_FIELDS[provider]
    try:
        response = client().get(
            graph_url("me", base_url(provider)),
            params={"fields": f"{id_field},{name_field}"},
            headers={"Authorization": f"Bearer {raw_token}"},
            timeout=settings.META_HTTP_TIMEOUT,
        )
    except httpx.TransportError as exc:  # a timeout too: reading /me twice is harmless
        raise MetaUnavailableError(f"Meta could not be reached ({type(exc).__name__}).") from None
    if not response.is_success:
        _raise_for_identify(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    # Meta answers /me with the fields at the top level; its getting-started guide shows them
    # wrapped in a one-item `data` list, so both are read.
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
        body = body["data"][0]
    account_id = body.get(id_field) if isinstance(body, dict) else None
    if isinstance(account_id, int) and not isinstance(account_id, bool):
        account_id = str(account_id)
    if not isinstance(account_id, str) or not account_id:
        raise MetaUnavailableError(
            f"Meta's answer did not name the token's account (no `{id_field}`).", bad_answer=True
        )
    name = body.get(name_field)
    return Identity(account_id=account_id, name=name[:MAX_ACCOUNT_NAME] if isinstance(name, str) else "")


def _raise_for_identify(response: httpx.Response) -> None:
    failure = _failure(response)
    detail = failure.detail
    if failure.rate_limited:
        raise MetaUnavailableError(f"Meta's rate limit ({detail}).", retry_after=_retry_after(response))
    if failure.transient:
        raise MetaUnavailableError(f"Meta is temporarily unavailable ({detail}).", retry_after=_retry_after(response))
    if failure.code is not None or response.status_code in (401, 403):
        # 190/102 (invalid, expired, revoked), 10/200-299 (permission), 100 (a field the token's
        # kind of account lacks)...: Meta looked at the token and said no.
        raise TokenRefusedError(detail)
    # A 4xx without Meta's error shape is not Meta talking about the token (a proxy, a wrong
    # META_*_GRAPH_URL): nothing the client could fix.
    raise MetaUnavailableError(f"Meta's answer was not understood ({detail}).", bad_answer=True)
