"""Searching one user's knowledge base: the API, the admin and the flow nodes come here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from knowledge.embeddings import Embedder, get_embedder
from knowledge.errors import EmbedderMismatch, StoreMismatch
from knowledge.models import Document
from knowledge.stores import OLD_VECTORS_KEPT_SECONDS, Hit, get_store

MAX_QUERY_CHARS = 1000
MAX_K = 50


@dataclass(frozen=True)
class Result:
    document_id: int
    title: str
    text: str
    score: float

    def as_dict(self, max_text: int | None = None) -> dict:
        text = self.text
        if max_text is not None and len(text) > max_text:
            text = text[: max_text - 1].rstrip() + "…"
        return {"document": {"id": self.document_id, "title": self.title}, "text": text, "score": round(self.score, 4)}


def built_with(user_id: int, *, exclude_document: int | None = None) -> set[tuple[str, int, str]]:
    """The (embedder, dimension, store) triples of a user's live chunks."""
    documents = Document.objects.filter(user_id=user_id, indexed_generation__isnull=False)
    if exclude_document is not None:
        documents = documents.exclude(pk=exclude_document)
    return set(documents.values_list("embedder", "embedding_dim", "vector_store").distinct()[:10])


def check_embedder(user_id: int, embedder: Embedder, *, exclude_document: int | None = None) -> bool:
    """Raise if live chunks were built by another embedder or kept in another store.

    Returns whether the user has live chunks at all.
    """
    store = settings.VECTOR_STORE
    triples = built_with(user_id, exclude_document=exclude_document)
    for name, dim, built_in in sorted(triples):
        if (name, dim) != (embedder.name, embedder.dim):
            raise EmbedderMismatch(name, dim, embedder.name, embedder.dim)
        if built_in and built_in != store:  # blank: indexed before stores were recorded
            raise StoreMismatch(built_in, store)
    return bool(triples)


def search(*, user_id: int, query: str, k: int) -> list[Result]:
    """The k passages of `user_id`'s knowledge base closest to `query`, best first.

    Only live chunks are returned: a hit whose document was deleted, or whose generation
    is not the document's indexed one (a re-upload in progress in a non-transactional
    store), is dropped. That is also why external stores are asked for more than k. One
    exception, see `answering_generations`: right after a re-index, an eventually
    consistent store may still answer with the previous generation only.
    """
    query = query.strip()[:MAX_QUERY_CHARS]
    if not query:
        return []
    embedder = get_embedder()
    if not check_embedder(user_id, embedder):
        return []  # nothing indexed yet: no need to embed the query
    vector = embedder.embed_query(query)
    if not any(vector):
        return []  # no word the embedder knows (punctuation, emoji): nothing can match
    store = get_store()
    fetch = k if store.transactional else min(2 * k + 10, 2 * MAX_K)
    hits = store.search(user_id, vector, fetch, embedder=embedder.name, dim=embedder.dim)
    if not hits:
        return []
    documents = Document.objects.filter(user_id=user_id, pk__in={hit.document_id for hit in hits})
    live = {
        pk: (generation, at, title)
        for pk, generation, at, title in documents.values_list("pk", "indexed_generation", "indexed_at", "title")
    }
    # A transactional store answered from one snapshot in which each document had one
    # version, the live one then: a re-index that commits between that query and the
    # lookup above must not drop it (the document would vanish from the results).
    answering = None if store.transactional else answering_generations(hits, live)
    results = []
    for hit in hits:
        if hit.document_id not in live:
            continue  # deleted since
        if answering is None or answering.get(hit.document_id) == hit.generation:
            results.append(Result(hit.document_id, live[hit.document_id][2], hit.text, hit.score))
    return results[:k]


def answering_generations(hits: list[Hit], live: dict[int, tuple]) -> dict[int, int]:
    """For a non-transactional store: the generation whose hits stand for each document.

    The live (indexed) one. But for OLD_VECTORS_KEPT_SECONDS after a switch, while the
    previous generation is still stored, an eventually consistent store (Pinecone) may not
    return the new vectors yet: then the newest older generation among the hits answers,
    as it did until the switch, instead of the document vanishing. Never a newer one (a
    re-index being written), never an older one once the live one is returned.
    """
    recent = timezone.now() - timedelta(seconds=OLD_VECTORS_KEPT_SECONDS)
    answering: dict[int, int] = {}
    for hit in hits:
        if hit.document_id not in live:
            continue
        generation, indexed_at, _ = live[hit.document_id]
        if generation is None or hit.generation > generation:
            continue
        if hit.generation < generation and not (indexed_at and indexed_at > recent):
            continue
        answering[hit.document_id] = max(answering.get(hit.document_id, 0), hit.generation)
    return answering
