"""The knowledge.search and ai.reply handlers, called as the engine calls them."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from core.testing import FakeHTTPServer, Reply
from flows.nodes import NodeContext, PermanentError, TransientError
from knowledge.nodes import ai_reply, knowledge_search
from knowledge.tests.shop import DOCUMENTS

pytestmark = pytest.mark.django_db

API_KEY = "sk-live-0123456789abcdefghijklmnopqrstuv"
REFUND_PASSAGE = "we refund the money to the original payment method"


@pytest.fixture
def shop(user, add_document):
    return {title: add_document(user, title, text) for title, text in DOCUMENTS.items()}


def context(user_id: int | None, text: str = "") -> NodeContext:
    return NodeContext(
        node_id="n", node_type="x", attempt=1, trigger={"text": text}, nodes={}, vars={}, user_id=user_id, flow_id=1
    )


def completion(content: str = "Refunds arrive within 5 working days.") -> Reply:
    return Reply(
        200,
        {
            "id": "chatcmpl-1",
            "model": "gpt-test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 420, "completion_tokens": 12, "total_tokens": 432},
        },
    )


def test_search_node_returns_bounded_results_from_the_owner(shop, user):
    result = knowledge_search({"query": "When will I get my refund?", "k": 3}, context(user.pk))

    output = result.output
    # Only the returns page shares a word with the question; passages with no similarity
    # at all (score <= min_score, 0 by default) are left out.
    assert output["count"] == 1
    assert output["results"][0]["document"] == {"id": shop["Returns and refunds"].pk, "title": "Returns and refunds"}
    assert all(len(r["text"]) <= 500 for r in output["results"])
    assert output["results"][0]["text"].endswith("…")  # the passage is longer than the log keeps
    assert result.port == "out"


def test_search_node_returns_at_most_k_passages(shop, user):
    config = {"query": "refund shipping payment store warranty", "k": 3}
    assert knowledge_search(config, context(user.pk)).output["count"] == 3
    assert knowledge_search({**config, "min_score": 0.99}, context(user.pk)).output["count"] == 0


def test_search_node_reads_only_the_flow_owners_namespace(shop, other_user):
    output = knowledge_search({"query": "When will I get my refund?", "k": 5}, context(other_user.pk)).output
    assert output == {"query": "When will I get my refund?", "count": 0, "results": []}


def test_search_node_refuses_an_empty_query_or_a_run_without_owner(shop, user):
    with pytest.raises(PermanentError, match="query is empty"):
        knowledge_search({"query": "   ", "k": 3}, context(user.pk))
    with pytest.raises(PermanentError, match="no owner"):
        knowledge_search({"query": "refund", "k": 3}, context(None))


def test_an_embedder_change_fails_the_step_with_the_fix(shop, user):
    with override_settings(EMBEDDINGS_DIM=512), pytest.raises(PermanentError, match="rebuild_knowledge"):
        knowledge_search({"query": "refund"}, context(user.pk))


@override_settings(LLM_BASE_URL="")
def test_ai_reply_without_llm_answers_with_the_best_passage_and_says_so(shop, user):
    output = ai_reply({"query": "When will I get my refund?", "k": 3}, context(user.pk)).output

    assert output["mode"] == "extractive"
    assert "LLM_BASE_URL" in output["note"]
    assert REFUND_PASSAGE in output["reply"]
    assert output["passages"][0]["document"]["title"] == "Returns and refunds"


@override_settings(LLM_BASE_URL="")
def test_ai_reply_uses_the_fallback_when_nothing_matches(user, add_document):
    add_document(user, "Hours", "We open at 9 am.")
    config = {"query": "quantum chromodynamics", "fallback": "A person will answer you soon."}

    output = ai_reply(config, context(user.pk)).output

    assert output["reply"] == "A person will answer you soon."
    assert output["passages"] == []
    assert "fallback" in output["note"]


def test_ai_reply_sends_the_passages_to_the_llm(shop, user):
    with (
        FakeHTTPServer(lambda request: completion()) as server,
        override_settings(LLM_BASE_URL=server.url, OPENAI_API_KEY=API_KEY, LLM_MODEL="gpt-default"),
    ):
        config = {
            "query": "When will I get my refund?",
            "prompt": "You are Mia from Example Shop. Answer in English.",
            "k": 2,
            "max_tokens": 120,
            "temperature": 0.1,
        }
        output = ai_reply(config, context(user.pk)).output

    request = server.received("POST", "/chat/completions")[0]
    body = request.json()
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert body["model"] == "gpt-default"
    assert (body["max_tokens"], body["temperature"]) == (120, 0.1)
    system, question = body["messages"]
    assert system["role"] == "system"
    assert system["content"].startswith("You are Mia from Example Shop.")
    assert "only the knowledge base passages" in system["content"]
    assert REFUND_PASSAGE in question["content"]
    assert "[1] Returns and refunds" in question["content"]
    assert question["content"].endswith("When will I get my refund?")
    assert output["mode"] == "llm"
    assert output["reply"] == "Refunds arrive within 5 working days."
    assert output["usage"]["total_tokens"] == 432
    assert API_KEY not in json.dumps(output)


def test_the_node_model_overrides_the_default(shop, user):
    with FakeHTTPServer(lambda request: completion()) as server, override_settings(LLM_BASE_URL=server.url):
        ai_reply({"query": "refund", "model": "llama-3.1-8b"}, context(user.pk))
    request = server.received("POST", "/chat/completions")[0]
    assert request.json()["model"] == "llama-3.1-8b"
    assert "authorization" not in request.headers  # no key configured: none sent


@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (Reply(429, {"error": {"message": "Rate limit"}}, headers={"Retry-After": "12"}), TransientError, "429"),
        (Reply(502, b"bad gateway"), TransientError, "502"),
        (Reply(400, {"error": {"message": f"Invalid API key {API_KEY}"}}), PermanentError, "400"),
        (Reply(200, {"choices": []}), PermanentError, "without a message"),
        (Reply(200, {"choices": [{"message": {"content": "  "}}]}), PermanentError, "empty message"),
    ],
)
def test_llm_failures_map_to_retry_or_fail_without_the_key(shop, user, reply, error, text):
    with (
        FakeHTTPServer(lambda request: reply) as server,
        override_settings(LLM_BASE_URL=server.url, OPENAI_API_KEY=API_KEY),
        pytest.raises(error) as caught,
    ):
        ai_reply({"query": "refund"}, context(user.pk))
    assert text in str(caught.value)
    assert API_KEY not in str(caught.value)
    if reply.status == 429:
        assert caught.value.retry_after == 12


@override_settings(LLM_TIMEOUT=1)
def test_a_slow_llm_is_a_transient_failure(shop, user):
    with (
        FakeHTTPServer(lambda request: Reply(200, {}, delay=3)) as server,
        override_settings(LLM_BASE_URL=server.url),
        pytest.raises(TransientError, match="did not answer within 1 s"),
    ):
        ai_reply({"query": "refund"}, context(user.pk))
