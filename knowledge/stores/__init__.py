"""Vector stores behind one small interface, one namespace per user.

Every method takes the namespace (the owner's user id) as its first, required argument
and confines itself to it: the store derives the table filter, Weaviate tenant or Pinecone
namespace from that id itself, so no caller can read or write another user's vectors by
forgetting a filter. `delete_namespace` removes everything a user has (the GDPR purge
calls it).

Stores:
- `pgvector` (default): the knowledge_chunks table in the primary database. Its writes
  join the caller's transaction (`transactional = True`), which makes a re-upload's switch
  from old to new chunks atomic.
- `weaviate`: one multi-tenant collection per dimension, one tenant per user.
- `pinecone`: one namespace per user in the index at PINECONE_INDEX_HOST.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from knowledge.errors import ServiceError

STORES = ("pgvector", "weaviate", "pinecone")
# How long a re-indexed document's previous generation stays in a non-transactional store
# after the switch. Pinecone is eventually consistent: for a few seconds after an upsert a
# query may not return the new vectors yet, so deleting the old ones at once would make the
# document vanish from results. Until they are deleted (a delayed cleanup task), searches
# let the previous generation answer for a document whose live one the store did not return.
OLD_VECTORS_KEPT_SECONDS = 60


@dataclass(frozen=True)
class ChunkVector:
    document_id: int
    generation: int
    position: int
    text: str
    vector: Sequence[float]


@dataclass(frozen=True)
class Hit:
    document_id: int
    generation: int
    position: int
    text: str
    score: float  # cosine similarity: 1 is the same direction


def namespace_id(user_id: object) -> int:
    """The namespace must be a real user id; anything else is a programming error."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise ValueError(f"A vector store namespace must be a user id, got {user_id!r}.")
    return user_id


class VectorStore:
    name: str
    # True when writes happen inside the caller's database transaction.
    transactional: bool = False

    def prepare(self, dim: int) -> None:
        """Make sure vectors of this dimension can be stored and searched fast."""

    def upsert(self, user_id: int, chunks: Sequence[ChunkVector], *, embedder: str, dim: int) -> None:
        raise NotImplementedError

    def search(self, user_id: int, vector: Sequence[float], k: int, *, embedder: str, dim: int) -> list[Hit]:
        """The k chunks closest to `vector` among those built by `embedder`, best first."""
        raise NotImplementedError

    def delete_document(self, user_id: int, document_id: int, *, older_than: int | None = None) -> None:
        """Remove a document's chunks: all of them, or those of generations before `older_than`.

        Generations only grow, so removing the older ones never touches a newer version
        being written while this call (or a delayed cleanup task) runs.
        """
        raise NotImplementedError

    def delete_namespace(self, user_id: int) -> None:
        raise NotImplementedError

    def count(self, user_id: int, document_id: int | None = None) -> int:
        raise NotImplementedError


def build_store(name: str) -> VectorStore:
    if name == "pgvector":
        from knowledge.stores.pgvector import PgvectorStore

        return PgvectorStore()
    if name == "weaviate":
        if not settings.WEAVIATE_URL:
            raise ServiceError("VECTOR_STORE is weaviate but WEAVIATE_URL is not set.")
        return _weaviate(
            settings.WEAVIATE_URL, settings.WEAVIATE_API_KEY, settings.WEAVIATE_GRPC_PORT, settings.WEAVIATE_COLLECTION
        )
    if name == "pinecone":
        if not (settings.PINECONE_INDEX_HOST and settings.PINECONE_API_KEY):
            raise ServiceError("VECTOR_STORE is pinecone but PINECONE_INDEX_HOST or PINECONE_API_KEY is not set.")
        from knowledge.stores.pinecone import PineconeStore

        return PineconeStore(settings.PINECONE_INDEX_HOST, settings.PINECONE_API_KEY)
    raise ServiceError(f"Unknown VECTOR_STORE {name!r}; use one of {', '.join(STORES)}.")


@lru_cache(maxsize=4)
def _weaviate(url: str, api_key: str, grpc_port: int, collection: str) -> VectorStore:
    # One client per process and configuration: it keeps HTTP and gRPC connections open.
    from knowledge.stores.weaviate import WeaviateStore

    return WeaviateStore(url, api_key=api_key, grpc_port=grpc_port, collection_prefix=collection)


def get_store() -> VectorStore:
    """The configured store (settings are read on each call, so overrides apply)."""
    return build_store(settings.VECTOR_STORE)
