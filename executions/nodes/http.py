"""The http.request node: outbound HTTP with timeouts, a size cap and an SSRF guard.

The guard sits in the connection layer: every TCP connection (redirects included) resolves
the host, refuses loopback, private, link-local and other non-public addresses, and
connects to the very address it checked, so DNS rebinding cannot slip past it.
"""

from __future__ import annotations

import ipaddress
import json
import socket

import httpcore
import httpx
from django.conf import settings

from core.http import ResponseTooLarge, read_capped, retry_after_seconds
from executions.engine import NodeContext, NodeResult, PermanentError, TransientError

USER_AGENT = "Inflow/1.0 (+http.request node)"
MAX_REDIRECTS = 5


class BlockedAddress(Exception):
    """Not an httpcore error on purpose: httpx would re-wrap it as a plain ConnectError."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class GuardedBackend(httpcore.SyncBackend):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

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
        return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=10,
            network_backend=GuardedBackend(allow_private),
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
    if body is not None and method not in {"GET", "HEAD", "OPTIONS"}:
        request_kwargs["json"] = body

    transport = GuardedTransport(allow_private=settings.HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS)
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
    except httpx.TimeoutException:
        raise TransientError(f"Timed out after {timeout:g} s.") from None
    except httpx.TooManyRedirects:
        raise PermanentError(f"More than {MAX_REDIRECTS} redirects.") from None
    except (httpx.TransportError, httpx.InvalidURL, UnicodeError) as exc:
        raise TransientError(f"Connection failed: {exc}") from None

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
