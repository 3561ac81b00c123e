"""The http.request node against local servers: SSRF guard, size cap, timeouts, statuses."""

from __future__ import annotations

import pytest

from core.testing import FakeHTTPServer, Reply
from executions.engine import NodeContext, PermanentError, TransientError
from executions.nodes.http import http_request, is_public


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
