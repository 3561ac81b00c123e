"""The knowledge base's part of GDPR: documents, chunks and the user's vector namespace."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection

from knowledge.models import Chunk, Document
from knowledge.stores import get_store

# Only after_purge runs REINDEX CONCURRENTLY on this table (under REBUILD_LOCK).
REBUILD_LOCK = 0x696E666C6F77  # "inflow"
HNSW_INDEXES_SQL = """
SELECT c.relname, i.indisvalid FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = 'knowledge_chunks'::regclass AND am.amname = 'hnsw'
"""


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
    started = time.monotonic()
    with connection.cursor() as cursor:
        _take_turn(cursor)
        try:
            dropped = _drop_interrupted_rebuilds(cursor)
            cursor.execute(HNSW_INDEXES_SQL)
            hnsw_indexes = [name for name, valid in cursor.fetchall() if valid]
            # pgvector's advice: rebuild HNSW indexes before vacuuming. Vacuum would otherwise
            # repair every neighbour list that pointed at an erased vector, one search each,
            # which is slower than building the graph afresh without them.
            cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)", [settings.KNOWLEDGE_REINDEX_MEMORY])
            for name in hnsw_indexes:
                cursor.execute(f"REINDEX INDEX CONCURRENTLY {connection.ops.quote_name(name)}")
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute("VACUUM (ANALYZE) knowledge_chunks")
            cursor.execute("VACUUM (ANALYZE) knowledge_documents")
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s::bigint)", [REBUILD_LOCK])
    report(
        f"rebuilt {len(hnsw_indexes)} HNSW index(es) and vacuumed knowledge_chunks: the erased vectors are gone "
        f"({time.monotonic() - started:.1f} s)" + (f"; dropped {dropped} left by an interrupted run" if dropped else "")
    )


def _take_turn(cursor) -> None:
    """Overlapping purge runs rebuild one at a time, so that none mistakes the other's
    half-built index for debris. Polled, not waited for: a session blocked inside
    pg_advisory_lock holds a snapshot, which the other run's REINDEX CONCURRENTLY waits
    to see finish, and PostgreSQL would end the pair as a deadlock."""
    while True:
        cursor.execute("SELECT pg_try_advisory_lock(%s::bigint)", [REBUILD_LOCK])
        if cursor.fetchone()[0]:
            return
        time.sleep(1)


def _drop_interrupted_rebuilds(cursor) -> int:
    """Drop the invalid `_ccnew`/`_ccold` copies that a REINDEX CONCURRENTLY killed midway
    leaves behind. Rebuilt again, one would become a second valid HNSW index of the same
    vectors: twice the disk and the write cost, forever."""
    cursor.execute(HNSW_INDEXES_SQL)
    debris = [name for name, valid in cursor.fetchall() if not valid and re.search(r"_cc(new|old)\d*$", name)]
    for name in debris:
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {connection.ops.quote_name(name)}")
    return len(debris)


def export_user(user) -> dict[str, Iterator[dict]]:
    def documents() -> Iterator[dict]:
        fields = ["id", "title", "source", "content", "status", "chunk_count", "created_at", "updated_at"]
        yield from Document.objects.filter(user=user).order_by("id").values(*fields).iterator(chunk_size=100)

    return {"knowledge_documents": documents()}
