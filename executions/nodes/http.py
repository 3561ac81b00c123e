"""The http.request node: outbound HTTP with timeouts, a size cap and an SSRF guard.

The guard sits in the connection layer: every TCP connection (redirects included) resolves
the host, refuses loopback, private, link-local and other non-public addresses, and
connects to the very address it checked, so DNS rebinding cannot slip past it.

The timeout is a deadline for the whole request, redirects and body included. httpx's own
timeouts apply to each read: a server sending a byte every few seconds never trips them.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from core.http import ResponseTooLarge, read_capped, retry_after_seconds
from flows.nodes import NodeContext, NodeResult, NodeSpec, PermanentError, RetryPolicy, TransientError, object_schema
from flows.templates import has_template

SAFE_HTTP_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_AGENT = "Inflow/1.0 (+http.request node)"
MAX_REDIRECTS = 5


class BlockedAddress(Exception):
    """Not an httpcore error on purpose: httpx would re-wrap it as a plain ConnectError."""


# IPv6 ranges that carry an IPv4 address in their last 32 bits (IPv4-mapped and -translated,
# the deprecated IPv4-compatible, NAT64 well-known and local-use): a NAT64 gateway or a dual stack reaches
# that IPv4 address, so it is the one to judge. 6to4 (2002::/16) is unwrapped by ipaddress.
EMBEDS_IPV4 = [
    ipaddress.ip_network(net) for net in ("::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48")
]


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.sixtofour is not None:
            ip = ip.sixtofour
        elif any(ip in net for net in EMBEDS_IPV4) and int(ip) & 0xFFFFFFFF > 1:  # not :: or ::1
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.is_global and not ip.is_multicast


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self.stream = stream
        self.deadline = deadline

    def _left(self, timeout: float | None) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the request ran past its timeout")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.stream.read(max_bytes, self._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self.deadline <= time.monotonic():
            raise httpcore.WriteTimeout("the request ran past its timeout")
        self.stream.write(buffer, self._left(timeout))

    def close(self) -> None:
        self.stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> DeadlineStream:
        return DeadlineStream(self.stream.start_tls(ssl_context, server_hostname, self._left(timeout)), self.deadline)

    def get_extra_info(self, info: str):
        return self.stream.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    def __init__(self, allow_private: bool, deadline: float) -> None:
        self.allow_private = allow_private
        self.deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = [info[4][0] for info in infos]
        if not self.allow_private:
            blocked = [a for a in addresses if not is_public(a)]
            if blocked:
                raise BlockedAddress(f"{host} resolves to a non-public address ({blocked[0]}); refused")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the request ran past its timeout")
        timeout = left if timeout is None else min(timeout, left)
        stream = super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)
        return DeadlineStream(stream, self.deadline)


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, allow_private: bool, deadline: float) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=10,
            network_backend=GuardedBackend(allow_private, deadline),
        )


def _decode(body: bytes, content_type: str) -> object:
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def http_request(config: dict, ctx: NodeContext) -> NodeResult:
    method = config.get("method", "GET").upper()
    url = config["url"]
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise PermanentError(f"The URL must be http:// or https://, got {str(url)[:100]!r}.")
    timeout = min(float(config.get("timeout_seconds", 10)), ctx.time_left, settings.HTTP_REQUEST_MAX_TIMEOUT)
    headers = {"User-Agent": USER_AGENT, **{str(k): str(v) for k, v in (config.get("headers") or {}).items()}}
    body = config.get("body")
    request_kwargs = {"headers": headers, "params": config.get("query") or None}
    if body is not None and method not in SAFE_HTTP_METHODS:
        request_kwargs["json"] = body

    deadline = time.monotonic() + timeout
    transport = GuardedTransport(allow_private=settings.HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS, deadline=deadline)
    try:
        with (
            httpx.Client(
                transport=transport, timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS
            ) as client,
            client.stream(method, url, **request_kwargs) as response,
        ):
            raw = read_capped(response, settings.HTTP_REQUEST_MAX_RESPONSE_BYTES)
    except ResponseTooLarge:
        limit = settings.HTTP_REQUEST_MAX_RESPONSE_BYTES
        raise PermanentError(f"The response is larger than {limit // 1024} KB; refused.") from None
    except BlockedAddress as exc:
        raise PermanentError(f"Blocked: {exc} (SSRF protection).") from None
    except httpx.TooManyRedirects:
        raise PermanentError(f"More than {MAX_REDIRECTS} redirects.") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError, UnicodeError) as exc:
        # The request itself is wrong (a bad URL or header, a redirect to ftp://): a retry sends it again.
        raise PermanentError(f"Invalid request: {exc}") from None
    except (httpx.ConnectTimeout, httpx.PoolTimeout):
        raise TransientError(f"Timed out after {timeout:g} s (could not connect).") from None
    except httpx.ConnectError as exc:
        raise TransientError(f"Connection failed: {exc}") from None
    except (httpx.TimeoutException, httpx.TransportError) as exc:
        timed_out = isinstance(exc, httpx.TimeoutException)
        what = f"Timed out after {timeout:g} s" if timed_out else f"Connection broke: {exc}"
        if method not in SAFE_HTTP_METHODS:
            # The request was sent and may have been acted on: retrying could do it twice.
            raise PermanentError(f"{what}; the {method} may have gone through, so it is not repeated.") from None
        raise TransientError(f"{what}.") from None

    output = {
        "status": response.status_code,
        "headers": {"content-type": response.headers.get("content-type", "")},
        "body": _decode(raw, response.headers.get("content-type", "")),
    }
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(
            f"HTTP {response.status_code} from {response.url.host}",
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
    if response.status_code >= 400:
        snippet = raw[:200].decode("utf-8", errors="replace")
        raise PermanentError(f"HTTP {response.status_code} from {response.url.host}: {snippet}")
    return NodeResult(output=output)


def has_side_effect(config: dict) -> bool:
    return str(config.get("method", "GET")).upper() not in SAFE_HTTP_METHODS


def check_http_request(config: dict) -> list[tuple[str, str]]:
    url = config.get("url")
    if not isinstance(url, str):
        return []
    # The scheme is always literal; a templated host is checked at run time (SSRF guard).
    if not url.lower().startswith(("http://", "https://")):
        return [("url", "must start with http:// or https://.")]
    if has_template(url):
        return []
    parts = urlsplit(url)
    if not parts.hostname:
        return [("url", "must be an absolute URL with a host.")]
    if parts.username or parts.password:
        return [("url", "must not embed credentials; use headers instead.")]
    return []


STRING_MAP = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 2000}, "maxProperties": 30}

HTTP_REQUEST = NodeSpec(
    type="http.request",
    name="HTTP request",
    category="action",
    description="Calls an HTTP endpoint. Private and loopback addresses are refused unless allowed.",
    config_schema=object_schema(
        {
            "method": {"enum": ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"], "default": "GET"},
            "url": {"type": "string", "minLength": 1, "maxLength": 2000},
            "headers": STRING_MAP,
            "query": STRING_MAP,
            "body": {"description": "Sent as JSON. Strings inside are templates."},
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 30, "default": 10},
        },
        required=("url",),
    ),
    side_effect=has_side_effect,
    checks=check_http_request,
    handler=http_request,
    retry=RetryPolicy(max_attempts=3, backoff_seconds=1.0, max_backoff_seconds=60.0),
)

NODE_TYPES: tuple[NodeSpec, ...] = (HTTP_REQUEST,)
