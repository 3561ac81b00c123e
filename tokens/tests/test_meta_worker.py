"""Meta webhooks end to end: signed POST → Celery worker → flow → fake Graph API.

Real PostgreSQL, real Redis, real worker processes; Meta's Graph API is a FakeHTTPServer
on 127.0.0.1 whose address the worker gets through its environment.
"""

from __future__ import annotations

import time

import pytest
import redis
from django.test import Client

from conftest import TEST_REDIS_URL
from core.testing import FakeHTTPServer, wait_for
from executions.models import FlowExecution
from tokens.models import ApiToken, MetaWebhookDelivery
from tokens.tasks import sweep_meta_deliveries
from tokens.tests.meta import (
    IG_ACCOUNT,
    RAW_TOKEN,
    comment_payload,
    connect,
    graph_ok,
    graph_path,
    make_flow,
    message_payload,
    meta_error,
    post_signed,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

COMMENT_FLOW = {"type": "instagram.comment", "config": {"keywords": ["price"], "match": "any"}}
PRIVATE_REPLY = {
    "id": "reply",
    "type": "instagram.private_reply",
    "config": {"text": "Hi {{ trigger.username }}! The price is $20."},
}


@pytest.fixture
def graph():
    with FakeHTTPServer(graph_ok) as server:
        yield server


def finished(flow) -> list[FlowExecution]:
    runs = list(FlowExecution.objects.filter(flow=flow))
    return runs if runs and all(r.is_finished for r in runs) else []


def test_a_price_comment_gets_exactly_one_private_reply(start_worker, graph, user):
    connect(user)
    flow = make_flow(user, COMMENT_FLOW, [PRIVATE_REPLY])
    start_worker(META_INSTAGRAM_GRAPH_URL=graph.url)
    payload = comment_payload("What's the PRICE?", comment_id="17900000000000042", username="jane.doe")

    client = Client()
    responses = [post_signed(client, payload) for _ in range(3)]  # Meta retries deliveries
    assert [r.status_code for r in responses] == [200, 200, 200]

    wait_for(lambda: MetaWebhookDelivery.objects.filter(processed_at__isnull=True).count() == 0, 30)
    [execution] = wait_for(lambda: finished(flow), 30, message="the execution to finish")
    assert execution.status == "succeeded", execution.error
    assert execution.dedup_key == "comment:17900000000000042"
    [post] = graph.received("POST")
    assert post.path == graph_path(f"{IG_ACCOUNT}/messages")
    assert post.json() == {
        "recipient": {"comment_id": "17900000000000042"},
        "message": {"text": "Hi jane.doe! The price is $20."},
    }
    step = execution.execution_log[-1]
    assert (step["node_id"], step["status"]) == ("reply", "succeeded")
    assert RAW_TOKEN not in str(execution.execution_log)
    time.sleep(1)  # nothing else is on its way
    assert FlowExecution.objects.count() == 1
    assert len(graph.received("POST")) == 1


def test_a_dm_flow_answers_the_sender_once(start_worker, graph, user):
    connect(user)
    flow = make_flow(
        user,
        {"type": "instagram.message", "config": {"keywords": ["menu"]}},
        [{"id": "dm", "type": "instagram.send_message", "config": {"text": "Here is the menu: {{ trigger.text }}"}}],
    )
    start_worker(META_INSTAGRAM_GRAPH_URL=graph.url)
    payload = message_payload("Menu please", mid="aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx", sender="6660042")
    client = Client()
    for _ in range(2):
        assert post_signed(client, payload).status_code == 200

    [execution] = wait_for(lambda: finished(flow), 30, message="the execution to finish")
    assert execution.status == "succeeded", execution.error
    [post] = graph.received("POST")
    assert post.json() == {"recipient": {"id": "6660042"}, "message": {"text": "Here is the menu: Menu please"}}


def test_an_expired_token_fails_the_step_clearly_and_flips_the_status(start_worker, graph, user):
    token = connect(user)
    flow = make_flow(user, COMMENT_FLOW, [PRIVATE_REPLY])
    graph.responder = lambda request: meta_error(190, 401, "Error validating access token: Session has expired.")
    start_worker(META_INSTAGRAM_GRAPH_URL=graph.url)

    assert post_signed(Client(), comment_payload("price?")).status_code == 200

    [execution] = wait_for(lambda: finished(flow), 30, message="the execution to finish")
    assert execution.status == "failed"
    step = execution.execution_log[-1]
    assert step["status"] == "failed"
    assert step["attempt"] == 1  # not retried: retrying cannot fix a dead token
    assert f"token for account {IG_ACCOUNT} has expired or was revoked; reconnect it" in step["error"]
    assert RAW_TOKEN not in str(execution.execution_log) + execution.error
    token.refresh_from_db()
    assert token.status == ApiToken.Status.EXPIRED
    assert len(graph.received("POST")) == 1


def test_a_delivery_whose_celery_message_was_lost_is_processed_by_the_sweeper(start_worker, graph, user, settings):
    settings.META_WEBHOOK_REQUEUE_SECONDS = 0
    connect(user)
    flow = make_flow(user, COMMENT_FLOW, [PRIVATE_REPLY])
    assert post_signed(Client(), comment_payload("price")).status_code == 200  # no worker yet
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()  # the broker loses the message

    start_worker(META_INSTAGRAM_GRAPH_URL=graph.url)
    time.sleep(1)
    assert MetaWebhookDelivery.objects.get().processed_at is None
    assert sweep_meta_deliveries() == 1

    [execution] = wait_for(lambda: finished(flow), 30, message="the execution to finish")
    assert execution.status == "succeeded", execution.error
    assert len(graph.received("POST")) == 1


def test_a_burst_of_deliveries_is_all_processed(start_worker, graph, user):
    """Nudges are coalesced (one queued Celery message at a time): none may be left behind."""
    connect(user)
    flow = make_flow(user, COMMENT_FLOW, [PRIVATE_REPLY])
    start_worker(META_INSTAGRAM_GRAPH_URL=graph.url)
    client = Client()
    comment_ids = [f"179000000000{n:05d}" for n in range(30)]
    for comment_id in comment_ids:
        assert post_signed(client, comment_payload("price", comment_id=comment_id)).status_code == 200

    runs = wait_for(lambda: len(finished(flow)) == 30 and finished(flow), 60, message="30 finished executions")
    assert {r.status for r in runs} == {"succeeded"}
    recipients = sorted(r.json()["recipient"]["comment_id"] for r in graph.received("POST"))
    assert recipients == comment_ids
    assert not MetaWebhookDelivery.objects.pending().exists()
