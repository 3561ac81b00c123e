"""The http.request node against local servers: SSRF guard, size cap, timeouts, statuses."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from core.testing import FakeHTTPServer, Reply
from executions.nodes.http import http_request, is_public
from flows.nodes import NodeContext, PermanentError, TransientError


def context() -> NodeContext:
    return NodeContext(node_id="h", node_type="http.request", attempt=1, trigger={}, nodes={}, vars={}, time_left=30)


@pytest.fixture
def allow_private(settings):
    settings.HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS = True


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",  # noqa: S104 (an address under test, not a bind)
        # IPv6 forms that carry a private IPv4 address: compatible, translated, NAT64, 6to4.
        "::7f00:1",
        "::ffff:0:a00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "2002:a00:1::",
    ],
)
def test_non_public_addresses_are_recognised(address):
    assert not is_public(address)


def test_public_addresses_are_allowed():
    assert is_public("93.184.216.34")
    assert is_public("2606:2800:220:1:248:1893:25c8:1946")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://169.254.169.254/latest/meta-data/"]
)
def test_private_targets_are_refused_by_default(settings, url):
    settings.HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(PermanentError, match="SSRF protection"):
        http_request({"url": url}, context())


def test_a_request_with_json_body_and_query(allow_private):
    with FakeHTTPServer(lambda r: Reply(201, {"created": True})) as server:
        result = http_request(
            {
                "url": f"{server.url}/items",
                "method": "POST",
                "query": {"page": "2"},
                "headers": {"X-Api-Key": "k"},
                "body": {"name": "Ana", "count": 3},
            },
            context(),
        )
    sent = server.received("POST", "/items")[0]
    assert sent.json() == {"name": "Ana", "count": 3}
    assert sent.query == {"page": ["2"]}
    assert sent.headers["x-api-key"] == "k"
    assert result.output["status"] == 201
    assert result.output["body"] == {"created": True}


def test_statuses_map_to_transient_and_permanent_errors(allow_private):
    replies = {
        "/busy": Reply(503),
        "/slow-down": Reply(429, {}, headers={"Retry-After": "7"}),
        "/missing": Reply(404, {"error": "nope"}),
    }
    with FakeHTTPServer(lambda r: replies[r.path]) as server:
        with pytest.raises(TransientError, match="HTTP 503"):
            http_request({"url": f"{server.url}/busy"}, context())
        with pytest.raises(TransientError) as throttled:
            http_request({"url": f"{server.url}/slow-down"}, context())
        assert throttled.value.retry_after == 7
        with pytest.raises(PermanentError, match="HTTP 404"):
            http_request({"url": f"{server.url}/missing"}, context())


def test_timeouts_are_transient(allow_private):
    with (
        FakeHTTPServer(lambda r: Reply(200, {}, delay=1.5)) as server,
        pytest.raises(TransientError, match="Timed out"),
    ):
        http_request({"url": f"{server.url}/slow", "timeout_seconds": 0.3}, context())


def test_a_timed_out_post_is_not_repeated(allow_private):
    """The server may have acted on it: a retry could place the order twice."""
    with FakeHTTPServer(lambda r: Reply(200, {}, delay=1.5)) as server:
        with pytest.raises(PermanentError, match="the POST may have gone through, so it is not repeated"):
            http_request({"url": f"{server.url}/orders", "method": "POST", "timeout_seconds": 0.3}, context())
        # Nothing was sent when the connection could not even be made: that one is retried.
        with pytest.raises(TransientError, match="Connection failed"):
            http_request({"url": "http://127.0.0.1:9/orders", "method": "POST"}, context())


def test_the_timeout_bounds_the_whole_request_not_each_read(allow_private):
    """A server dribbling one byte at a time never trips a per-read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))

    def dribble() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            with contextlib.suppress(OSError):
                for _ in range(40):  # 10 s in all if nobody hangs up
                    connection.sendall(b"x")
                    time.sleep(0.25)

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    started = time.monotonic()
    with listener, pytest.raises(TransientError, match="Timed out"):
        http_request({"url": f"http://127.0.0.1:{listener.getsockname()[1]}/", "timeout_seconds": 1}, context())
    assert time.monotonic() - started < 2


def test_invalid_requests_are_permanent(allow_private):
    with FakeHTTPServer(lambda r: Reply(302, b"", headers={"Location": "ftp://127.0.0.1/file"})) as server:
        with pytest.raises(PermanentError, match="Invalid request"):
            http_request({"url": f"{server.url}/moved"}, context())
        with pytest.raises(PermanentError, match="Invalid request"):
            http_request({"url": f"{server.url}/x", "headers": {"X-Bad": "a\r\nInjected: 1"}}, context())
    assert len(server.received()) == 1  # the redirect only: nothing was retried or sent wrongly


def test_responses_over_the_cap_are_refused(allow_private, settings):
    settings.HTTP_REQUEST_MAX_RESPONSE_BYTES = 10_000
    with (
        FakeHTTPServer(lambda r: Reply(200, b"x" * 50_000)) as server,
        pytest.raises(PermanentError, match="larger than"),
    ):
        http_request({"url": f"{server.url}/big"}, context())


def test_unreachable_hosts_are_transient(allow_private):
    with pytest.raises(TransientError, match="Connection failed"):
        http_request({"url": "http://127.0.0.1:9/closed"}, context())
