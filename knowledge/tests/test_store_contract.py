"""One contract, every vector store.

pgvector runs against the test database, Pinecone against the fake index in fakes.py, and
Weaviate against a real server when WEAVIATE_URL is set (skipped otherwise: its client
needs a server for both HTTP and gRPC, and embedded mode downloads a binary).
"""

from __future__ import annotations

import math
import os
import uuid

import pytest

from knowledge.models import Document
from knowledge.stores import ChunkVector
from knowledge.stores.pgvector import PgvectorStore
from knowledge.stores.pinecone import PineconeStore
from knowledge.tests.fakes import PINECONE_KEY, FakePinecone

pytestmark = pytest.mark.django_db

DIM = 8
MINE = "test-embedder"

STORES = [
    pytest.param("pgvector"),
    pytest.param("pinecone"),
    pytest.param(
        "weaviate",
        marks=pytest.mark.skipif(
            not os.environ.get("WEAVIATE_URL"),
            reason="no Weaviate server here: set WEAVIATE_URL (and WEAVIATE_GRPC_PORT) to run these tests",
        ),
    ),
]


@pytest.fixture(params=STORES)
def store(request):
    if request.param == "pgvector":
        yield PgvectorStore()
    elif request.param == "pinecone":
        with FakePinecone() as fake:
            yield PineconeStore(fake.url, PINECONE_KEY)
    else:
        from knowledge.stores.weaviate import WeaviateStore

        weaviate_store = WeaviateStore(
            os.environ["WEAVIATE_URL"],
            api_key=os.environ.get("WEAVIATE_API_KEY", ""),
            grpc_port=int(os.environ.get("WEAVIATE_GRPC_PORT", "50051")),
            collection_prefix=f"InflowTest{uuid.uuid4().hex[:8]}",
        )
        yield weaviate_store
        client = weaviate_store.client()
        for name in weaviate_store._our_collections():
            client.collections.delete(name)
        weaviate_store.close()


def unit(*weights: float, dim: int = DIM) -> list[float]:
    vector = [*weights, *([0.0] * (dim - len(weights)))]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def doc(user, title: str = "doc") -> Document:
    return Document.objects.create(user=user, title=title, content="text")


def chunk(document: Document, position: int, vector: list[float], text: str = "", generation: int = 1) -> ChunkVector:
    return ChunkVector(document.pk, generation, position, text or f"{document.title} #{position}", vector)


def put(store, document: Document, *chunks: ChunkVector, embedder: str = MINE, dim: int = DIM) -> None:
    store.upsert(document.user_id, list(chunks), embedder=embedder, dim=dim)


def find(store, user, vector: list[float], k: int = 5, embedder: str = MINE, dim: int = DIM):
    return store.search(user.pk, vector, k, embedder=embedder, dim=dim)


def test_the_nearest_chunk_comes_first(store, user):
    a, b = doc(user, "a"), doc(user, "b")
    put(store, a, chunk(a, 0, unit(1, 0, 0)), chunk(a, 1, unit(0, 1, 0)))
    put(store, b, chunk(b, 0, unit(0, 0, 1)), chunk(b, 1, unit(0, 1, 1)))

    hits = find(store, user, unit(0.1, 1, 0))

    assert [(h.document_id, h.position) for h in hits][:2] == [(a.pk, 1), (b.pk, 1)]
    assert hits[0].text == "a #1"
    assert hits[0].score == pytest.approx(unit(0.1, 1, 0)[1], abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(find(store, user, unit(1), k=2)) == 2


def test_a_namespace_never_sees_another(store, user, other_user, make_user):
    mine, theirs = doc(user), doc(other_user)
    put(store, mine, chunk(mine, 0, unit(1, 0), text="user A's secret price list"))
    put(store, theirs, chunk(theirs, 0, unit(0, 1), text="user B's passage"))

    hits = find(store, other_user, unit(1, 0))  # exactly user A's vector

    assert [h.text for h in hits] == ["user B's passage"]
    assert find(store, make_user(), unit(1, 0)) == []


def test_identical_text_in_two_documents_does_not_collide(store, user):
    first, second = doc(user, "first"), doc(user, "second")
    same = "Opening hours: 9 to 5."
    put(store, first, chunk(first, 0, unit(1, 1), text=same))
    put(store, second, chunk(second, 0, unit(1, 1), text=same))

    hits = find(store, user, unit(1, 1))

    assert sorted(h.document_id for h in hits) == sorted([first.pk, second.pk])
    assert store.count(user.pk) == 2


def test_upserting_the_same_chunk_replaces_it(store, user):
    document = doc(user)
    put(store, document, chunk(document, 0, unit(1), text="old"))
    put(store, document, chunk(document, 0, unit(1), text="new"))

    assert [h.text for h in find(store, user, unit(1))] == ["new"]
    assert store.count(user.pk, document.pk) == 1


def test_delete_document_can_delete_only_older_generations(store, user):
    document, other = doc(user), doc(user)
    put(store, document, chunk(document, 0, unit(1), generation=1), chunk(document, 1, unit(1, 1), generation=1))
    put(store, document, chunk(document, 0, unit(0, 1), generation=2))
    put(store, document, chunk(document, 0, unit(0, 1, 1), generation=3))  # a re-upload being written
    put(store, other, chunk(other, 0, unit(1), generation=1))

    store.delete_document(user.pk, document.pk, older_than=2)
    kept = sorted((h.generation, h.position) for h in find(store, user, unit(0, 1)) if h.document_id == document.pk)
    assert kept == [(2, 0), (3, 0)]
    assert store.count(user.pk, other.pk) == 1

    store.delete_document(user.pk, document.pk)
    assert store.count(user.pk, document.pk) == 0
    assert [h.document_id for h in find(store, user, unit(1))] == [other.pk]


def test_delete_namespace_removes_one_user_entirely(store, user, other_user):
    mine, theirs = doc(user), doc(other_user)
    put(store, mine, chunk(mine, 0, unit(1)), chunk(mine, 1, unit(0, 1)))
    put(store, theirs, chunk(theirs, 0, unit(1)))

    store.delete_namespace(user.pk)

    assert store.count(user.pk) == 0
    assert find(store, user, unit(1)) == []
    assert store.count(other_user.pk) == 1
    store.delete_namespace(user.pk)  # nothing left: still fine


def test_chunks_of_another_embedder_are_not_returned(store, user):
    document = doc(user)
    put(store, document, chunk(document, 0, unit(1), text="old model"), embedder="old-embedder")
    put(store, document, chunk(document, 1, unit(1), text="current model"))

    assert [h.text for h in find(store, user, unit(1))] == ["current model"]


def test_1536_dimensions_work(store, user):
    document = doc(user)
    store.prepare(1536)
    vectors = [unit(*([0.0] * i), 1.0, dim=1536) for i in (0, 700, 1535)]
    put(store, document, *(chunk(document, i, v) for i, v in enumerate(vectors)), dim=1536)

    hits = find(store, user, vectors[1], dim=1536)

    assert hits[0].position == 1
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("bad", [None, 0, -3, "1", True, 1.0])
def test_the_namespace_must_be_a_user_id(store, bad):
    with pytest.raises(ValueError, match="namespace"):
        store.search(bad, unit(1), 3, embedder=MINE, dim=DIM)
    with pytest.raises(ValueError, match="namespace"):
        store.delete_namespace(bad)
