"""The pgvector store: chunks and their embeddings in the primary database.

Dimensions. `knowledge_chunks.embedding` is a `vector` without a fixed size so embedders
of any dimension up to 1536 share the table. Each dimension in use has a partial HNSW
index on the expression `embedding::vector(dim)` restricted to `dim = dim`; the search
orders by the very same expression, which is what lets the planner use it. The migration
creates the index for the default 384; `prepare()` creates others on first use
(ingestion and rebuild_knowledge call it).

Filtered search. The index covers every namespace, and a search keeps only the caller's
rows. pgvector 0.8's iterative scan (`hnsw.iterative_scan = relaxed_order`) keeps walking
the graph until enough rows pass the filter, so a namespace that is a small share of the
table still gets its k nearest; a tiny namespace is found by the planner through the
user_id index and sorted exactly. Results of a relaxed scan can be slightly out of order,
hence the outer ORDER BY over a materialised CTE.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from knowledge.embeddings import MAX_DIM
from knowledge.stores import ChunkVector, Hit, VectorStore, namespace_id

INSERT_BATCH = 500

INDEX_NAME = "knowledge_chunks_hnsw_{dim}"
# m and ef_construction are pgvector's defaults, spelled out because recall depends on them.
CREATE_INDEX_SQL = (
    "CREATE INDEX IF NOT EXISTS knowledge_chunks_hnsw_{dim} ON knowledge_chunks "
    "USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
    "WHERE dim = {dim}"
)
SEARCH_SQL = """
WITH hits AS MATERIALIZED (
    SELECT document_id, generation, position, text,
           embedding::vector({dim}) <=> %s::vector({dim}) AS distance
    FROM knowledge_chunks
    WHERE user_id = %s AND dim = {dim} AND embedder = %s
    ORDER BY embedding::vector({dim}) <=> %s::vector({dim})
    LIMIT %s
)
SELECT document_id, generation, position, text, distance FROM hits
ORDER BY distance, document_id, position
"""
UPSERT_SQL = """
INSERT INTO knowledge_chunks (user_id, document_id, generation, position, text, embedding, embedder, dim)
VALUES {rows}
ON CONFLICT (document_id, generation, position)
DO UPDATE SET text = EXCLUDED.text, embedding = EXCLUDED.embedding, embedder = EXCLUDED.embedder, dim = EXCLUDED.dim
"""


def vector_literal(vector: Sequence[float]) -> str:
    # float32 precision is all pgvector keeps; 8 significant digits round-trip it.
    return "[" + ",".join(f"{x:.8g}" for x in vector) + "]"


def _checked_dim(dim: int) -> int:
    # The dimension is pasted into SQL (a typmod cannot be a parameter): it must be an int.
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise ValueError(f"dimension must be an integer from 1 to {MAX_DIM}, got {dim!r}")
    return dim


def index_exists(dim: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_indexes WHERE tablename = 'knowledge_chunks' AND indexname = %s",
            [INDEX_NAME.format(dim=_checked_dim(dim))],
        )
        return cursor.fetchone() is not None


def ensure_index(dim: int) -> bool:
    """Create the HNSW index for `dim` unless it exists. Returns True if it was created.

    Checked in pg_indexes first (one cheap query per ingestion run): CREATE INDEX takes a
    lock that blocks writers even when the index turns out to exist.
    """
    if index_exists(dim):
        return False
    outer = connection.in_atomic_block
    try:
        # A savepoint inside a caller's transaction, so a refusal below leaves it usable.
        with transaction.atomic(), connection.cursor() as cursor:
            if outer:
                # PostgreSQL refuses CREATE INDEX while deferred foreign-key checks are pending
                # in the transaction; running them now accepts and refuses exactly what COMMIT
                # would. Django declares its foreign keys DEFERRABLE INITIALLY DEFERRED, restored after.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(CREATE_INDEX_SQL.format(dim=_checked_dim(dim)))
            if outer:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    except IntegrityError:
        # IF NOT EXISTS does not cover a concurrent CREATE: the one that commits second
        # fails on the catalog's unique name. Two workers indexing the first documents of
        # a new dimension at once both end up with the index, not with one failed document.
        if index_exists(dim):
            return False
        raise
    return True


class PgvectorStore(VectorStore):
    name = "pgvector"
    transactional = True

    def prepare(self, dim: int) -> None:
        ensure_index(dim)

    def upsert(self, user_id: int, chunks: Sequence[ChunkVector], *, embedder: str, dim: int) -> None:
        user_id = namespace_id(user_id)
        dim = _checked_dim(dim)
        with connection.cursor() as cursor:
            for start in range(0, len(chunks), INSERT_BATCH):
                batch = chunks[start : start + INSERT_BATCH]
                params: list = []
                for chunk in batch:
                    if len(chunk.vector) != dim:
                        raise ValueError(f"chunk {chunk.position} has {len(chunk.vector)} dims, expected {dim}")
                    params += [
                        user_id,
                        chunk.document_id,
                        chunk.generation,
                        chunk.position,
                        chunk.text,
                        vector_literal(chunk.vector),
                        embedder,
                        dim,
                    ]
                rows = ",".join(["(%s, %s, %s, %s, %s, %s::vector, %s, %s)"] * len(batch))
                cursor.execute(UPSERT_SQL.format(rows=rows), params)

    def search(self, user_id: int, vector: Sequence[float], k: int, *, embedder: str, dim: int) -> list[Hit]:
        user_id = namespace_id(user_id)
        dim = _checked_dim(dim)
        literal = vector_literal(vector)
        # SET LOCAL lasts until the end of the transaction: atomic() scopes it to this search.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', %s, true), set_config('hnsw.max_scan_tuples', %s, true)",
                [str(max(settings.KNOWLEDGE_HNSW_EF_SEARCH, k)), str(settings.KNOWLEDGE_HNSW_MAX_SCAN_TUPLES)],
            )
            cursor.execute(SEARCH_SQL.format(dim=dim), [literal, user_id, embedder, literal, k])
            rows = cursor.fetchall()
        return [
            Hit(document_id=d, generation=g, position=p, text=t, score=1.0 - float(distance))
            for d, g, p, t, distance in rows
        ]

    def delete_document(self, user_id: int, document_id: int, *, older_than: int | None = None) -> None:
        sql = "DELETE FROM knowledge_chunks WHERE user_id = %s AND document_id = %s"
        params: list = [namespace_id(user_id), document_id]
        if older_than is not None:
            sql += " AND generation < %s"
            params.append(older_than)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    def delete_namespace(self, user_id: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM knowledge_chunks WHERE user_id = %s", [namespace_id(user_id)])

    def count(self, user_id: int, document_id: int | None = None) -> int:
        sql = "SELECT count(*) FROM knowledge_chunks WHERE user_id = %s"
        params: list = [namespace_id(user_id)]
        if document_id is not None:
            sql += " AND document_id = %s"
            params.append(document_id)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]
