"""Two workers processing deliveries of the same events at the same moment (real PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
import threading

import pytest
from django.db import connections

from executions.models import FlowExecution
from tokens import services
from tokens.models import MetaWebhookDelivery
from tokens.tests.meta import comment_payload, connect, make_flow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_worker")]

REPLY = {"id": "a", "type": "instagram.private_reply", "config": {"text": "Hi"}}


def process_at_once(delivery_ids: list[int]) -> tuple[dict[int, int | None], dict[int, str]]:
    """process_delivery in one thread (one database connection) per delivery, released together."""
    barrier = threading.Barrier(len(delivery_ids))
    results: dict[int, int | None] = {}
    errors: dict[int, str] = {}

    def work(delivery_id: int) -> None:
        try:
            barrier.wait()
            results[delivery_id] = services.process_delivery(delivery_id)
        except Exception as exc:
            errors[delivery_id] = repr(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(delivery_id,)) for delivery_id in delivery_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results, errors


def store(payload: dict) -> int:
    return MetaWebhookDelivery.store(payload["object"], json.dumps(payload))


def test_simultaneous_copies_of_a_delivery_start_one_execution_per_flow(user):
    connect(user)
    flows = [make_flow(user, {"type": "instagram.comment", "config": {}}, [REPLY]) for _ in range(2)]
    payload = comment_payload("price", comment_id="1795")
    results, errors = process_at_once([store(payload) for _ in range(4)])
    assert errors == {}
    assert sorted(results.values()) == [0, 0, 0, 2]
    assert sorted(FlowExecution.objects.values_list("flow_id", flat=True)) == [f.pk for f in flows]


def test_retries_batched_in_another_order_do_not_deadlock(user, monkeypatch):
    """Meta re-batches retries: [X, Y] and [Y, X] processed at once must both succeed.

    Each worker pauses after its first execution, so without a common lock order each one
    holds the dedup entry the other needs next.
    """
    connect(user)
    make_flow(user, {"type": "instagram.comment", "config": {}}, [REPLY])
    real_start = services.start_execution
    paused = threading.Barrier(2)

    def start_execution(**kwargs):
        result = real_start(**kwargs)
        # With one lock order the other worker is blocked, so this times out.
        with contextlib.suppress(threading.BrokenBarrierError):
            paused.wait(timeout=2)
        return result

    monkeypatch.setattr(services, "start_execution", start_execution)
    x, y = comment_payload("price", comment_id="1796"), comment_payload("price", comment_id="1797")
    xy = {"object": "instagram", "entry": x["entry"] + y["entry"]}
    yx = {"object": "instagram", "entry": y["entry"] + x["entry"]}
    results, errors = process_at_once([store(xy), store(yx)])
    assert errors == {}
    assert sorted(results.values()) == [0, 2]
    assert sorted(FlowExecution.objects.values_list("dedup_key", flat=True)) == ["comment:1796", "comment:1797"]
