"""manage.py rebuild_knowledge: after an embedder change, re-embed and search again."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from core.testing import FakeHTTPServer, Reply
from knowledge import search
from knowledge.errors import EmbedderMismatch
from knowledge.models import Chunk, Document
from knowledge.stores.pgvector import index_exists
from knowledge.tests.fakes import PINECONE_KEY
from knowledge.tests.shop import DOCUMENTS

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/knowledge/search/"


def rebuild(*args: str) -> str:
    out = StringIO()
    call_command("rebuild_knowledge", *args, stdout=out, stderr=out)
    return out.getvalue()


def test_a_dimension_change_blocks_search_until_the_rebuild(api, user, other_user, add_document):
    add_document(user, "Returns and refunds", DOCUMENTS["Returns and refunds"])
    add_document(user, "Shipping", DOCUMENTS["Shipping"])
    add_document(other_user, "Contact", DOCUMENTS["Contact"])

    with override_settings(EMBEDDINGS_DIM=1536):
        assert api.get(SEARCH, {"q": "refund"}).status_code == 409

        output = rebuild()

        assert "Rebuilding 3 document(s) with hashing-v2 (1536 dims) into pgvector." in output
        assert "[1/3] document" in output
        assert "[3/3] document" in output
        assert "Rebuilt 3 document(s)" in output
        assert "0 failed" in output
        response = api.get(SEARCH, {"q": "When will I get my refund?"})
        assert response.status_code == 200
        assert response.json()["results"][0]["document"]["title"] == "Returns and refunds"
        assert index_exists(1536)

    assert set(Chunk.objects.values_list("dim", flat=True)) == {1536}
    assert set(Document.objects.values_list("status", "generation", "embedding_dim")) == {("ready", 2, 1536)}


def test_rebuild_one_user_leaves_the_others_blocked(user, other_user, add_document):
    add_document(user, "Hours", "We open at 9 am.")
    add_document(other_user, "Parking", "Free parking behind the store.")

    with override_settings(EMBEDDINGS_DIM=256):
        output = rebuild("--user", str(user.pk))

        assert "Rebuilding 1 document(s)" in output
        assert search.search(user_id=user.pk, query="open", k=3)[0].text == "We open at 9 am."
        with pytest.raises(EmbedderMismatch):
            search.search(user_id=other_user.pk, query="parking", k=3)


@override_settings(KNOWLEDGE_EMBED_BATCH=2, KNOWLEDGE_CHUNK_TOKENS=20, KNOWLEDGE_CHUNK_OVERLAP=0)
def test_rebuild_shows_progress_within_a_document(user, add_document):
    add_document(user, "Shipping", DOCUMENTS["Shipping"])

    output = rebuild("--stale-only")  # nothing is stale yet
    assert "Rebuilding 0 document(s)" in output

    with override_settings(EMBEDDINGS_DIM=128):
        output = rebuild("--stale-only")

    total = Document.objects.get().chunk_count
    assert total > 4
    assert f"2/{total} chunks embedded" in output
    assert f"4/{total} chunks embedded" in output
    assert f": {total} chunks" in output


def test_a_knowledge_base_of_the_previous_hashing_scheme_must_be_rebuilt(api, user, add_document):
    """hashing-v2 added character features: vectors of hashing-v1 would silently rank worse."""
    document = add_document(user, "Shipping", DOCUMENTS["Shipping"])
    Document.objects.filter(pk=document.pk).update(embedder="hashing-v1")  # as indexed before the upgrade
    Chunk.objects.filter(document=document).update(embedder="hashing-v1")

    response = api.get(SEARCH, {"q": "shipping"})
    assert response.status_code == 409
    assert "built with hashing-v1 (384 dims); the server now uses hashing-v2 (384 dims)" in response.json()["detail"]
    assert add_document(user, "Contact", DOCUMENTS["Contact"], expect="failed").error.startswith(
        "The knowledge base was built with hashing-v1"
    )

    assert "Rebuilding 2 document(s) with hashing-v2 (384 dims)" in rebuild("--stale-only")
    assert api.get(SEARCH, {"q": "shipping"}).json()["results"][0]["document"]["title"] == "Shipping"
    assert set(Chunk.objects.values_list("embedder", flat=True)) == {"hashing-v2"}


def test_a_document_that_cannot_be_embedded_is_marked_failed(user, add_document):
    add_document(user, "Hours", "We open at 9 am.")
    with (
        FakeHTTPServer(lambda request: Reply(400, {"error": {"message": "model not found"}})) as server,
        override_settings(EMBEDDINGS_PROVIDER="openai", EMBEDDINGS_MODEL="nope", EMBEDDINGS_BASE_URL=server.url),
        pytest.raises(CommandError, match="1 document"),
    ):
        rebuild()
    document = Document.objects.get()
    assert document.status == "failed"
    assert "model not found" in document.error


def test_an_unknown_user_is_an_error():
    with pytest.raises(CommandError, match="There is no user 999999"):
        rebuild("--user", "999999")


def test_a_store_change_blocks_search_until_the_rebuild(api, user, add_document, fake_pinecone):
    add_document(user, "Parking", "Free parking behind the store.")  # into pgvector
    pinecone = {"VECTOR_STORE": "pinecone", "PINECONE_INDEX_HOST": fake_pinecone.url, "PINECONE_API_KEY": PINECONE_KEY}

    with override_settings(**pinecone):
        response = api.get(SEARCH, {"q": "parking"})
        assert response.status_code == 409
        assert response.json()["code"] == "store_mismatch"
        assert "indexed into pgvector; the server now uses pinecone" in response.json()["detail"]

        assert "Rebuilding 1 document(s) with hashing-v2 (384 dims) into pinecone" in rebuild("--stale-only")

        results = api.get(SEARCH, {"q": "parking"}).json()["results"]
        assert [r["text"] for r in results] == ["Free parking behind the store."]
        assert "Rebuilding 0 document(s)" in rebuild("--stale-only")
    assert len(fake_pinecone.namespaces[f"user-{user.pk}"]) == 1
    assert not Chunk.objects.exists()  # moved: nothing is left behind in pgvector


def test_moving_back_removes_the_vectors_from_the_store_left(api, user, add_document, fake_pinecone):
    pinecone = {"VECTOR_STORE": "pinecone", "PINECONE_INDEX_HOST": fake_pinecone.url, "PINECONE_API_KEY": PINECONE_KEY}
    with override_settings(**pinecone):
        add_document(user, "Parking", "Free parking behind the store.")
    assert fake_pinecone.namespaces[f"user-{user.pk}"]

    with override_settings(PINECONE_INDEX_HOST=fake_pinecone.url, PINECONE_API_KEY=PINECONE_KEY):
        assert "into pgvector" in rebuild()

    assert fake_pinecone.namespaces[f"user-{user.pk}"] == {}
    assert [r["text"] for r in api.get(SEARCH, {"q": "parking"}).json()["results"]] == [
        "Free parking behind the store."
    ]
