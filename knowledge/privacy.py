"""The knowledge base's part of GDPR: documents, chunks and the user's vector namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection

from knowledge.models import Chunk, Document
from knowledge.stores import get_store


def on_deletion_request(user) -> dict[str, int]:
    return {}  # the documents stay searchable by nobody: the account is disabled


def purge_user(user_id: int, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    # The vectors go first: an external store (Weaviate tenant, Pinecone namespace) has no
    # cascade, and with pgvector this is the chunk rows themselves.
    store = get_store()
    vectors = store.count(user_id)
    store.delete_namespace(user_id)
    chunks = 0
    while True:
        ids = list(Chunk.objects.filter(user_id=user_id).values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        chunks += Chunk.objects.filter(id__in=ids).delete()[0]
        report(f"knowledge_chunks: {chunks} deleted")
    documents, _ = Document.objects.filter(user_id=user_id).delete()
    report(f"knowledge_documents: {documents} deleted; vector namespace removed from {settings.VECTOR_STORE}")
    return {"knowledge_chunks": max(vectors, chunks), "knowledge_documents": documents}


def erase_contact(provider: str, contact_id: str, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    return {}  # documents are written by the client, not by its customers


def after_purge(report: Callable[[str], None]) -> None:
    """ "Retrain the KB": take deleted vectors out of the HNSW graphs and the heap.

    pgvector's VACUUM removes dead tuples from HNSW indexes and repairs the graph around
    them, so searches neither visit nor return erased vectors. External stores drop the
    tenant or namespace outright in purge_user.
    """
    if settings.VECTOR_STORE != "pgvector":
        return
    report("vacuuming knowledge_chunks (HNSW indexes drop the erased vectors)")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) knowledge_chunks")
        cursor.execute("VACUUM (ANALYZE) knowledge_documents")


def export_user(user) -> dict[str, Iterator[dict]]:
    def documents() -> Iterator[dict]:
        fields = ["id", "title", "source", "content", "status", "chunk_count", "created_at", "updated_at"]
        yield from Document.objects.filter(user=user).order_by("id").values(*fields).iterator(chunk_size=100)

    return {"knowledge_documents": documents()}
