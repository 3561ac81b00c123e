"""The Pinecone store, over Pinecone's data-plane REST API (no SDK dependency).

One namespace per user (`user-<id>`) in the index at PINECONE_INDEX_HOST, whose dimension
and metric (cosine) are chosen when the index is created in Pinecone's console. Vector ids
are `d<document>:g<generation>:p<position>`: the document id keeps identical text in two
documents apart, and the `d<document>:` prefix lets a document's vectors be listed and
deleted on serverless indexes, which do not delete by metadata filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings

from knowledge import remote
from knowledge.errors import ServiceError
from knowledge.stores import ChunkVector, Hit, VectorStore, namespace_id

API_VERSION = "2025-04"
UPSERT_BATCH = 100  # Pinecone's recommended batch size
DELETE_BATCH = 1000  # the most ids one delete call accepts
SERVICE = "Pinecone"


def vector_id(document_id: int, generation: int, position: int) -> str:
    return f"d{document_id}:g{generation}:p{position}"


def generation_of(vector_id: str) -> int:
    """The generation in an id made by vector_id() (listed by its document's prefix)."""
    return int(vector_id.split(":")[1][1:])


class PineconeStore(VectorStore):
    name = "pinecone"
    transactional = False

    def __init__(self, host: str, api_key: str) -> None:
        host = host.rstrip("/")
        self.base_url = host if host.startswith(("http://", "https://")) else f"https://{host}"
        self._api_key = api_key

    def _call(self, method: str, path: str, body: Any = None, params: dict | None = None) -> Any:
        return remote.request_json(
            method,
            f"{self.base_url}{path}",
            service=SERVICE,
            timeout=settings.EMBEDDINGS_TIMEOUT,
            headers={"Api-Key": self._api_key, "X-Pinecone-API-Version": API_VERSION},
            body=body,
            params=params,
        )

    @staticmethod
    def _namespace(user_id: int) -> str:
        return f"user-{namespace_id(user_id)}"

    def upsert(self, user_id: int, chunks: Sequence[ChunkVector], *, embedder: str, dim: int) -> None:
        namespace = self._namespace(user_id)
        for start in range(0, len(chunks), UPSERT_BATCH):
            vectors = [
                {
                    "id": vector_id(c.document_id, c.generation, c.position),
                    "values": [float(x) for x in c.vector],
                    "metadata": {
                        "document_id": c.document_id,
                        "generation": c.generation,
                        "position": c.position,
                        "text": c.text,
                        "embedder": embedder,
                        "dim": dim,
                    },
                }
                for c in chunks[start : start + UPSERT_BATCH]
            ]
            self._call("POST", "/vectors/upsert", {"vectors": vectors, "namespace": namespace})

    def search(self, user_id: int, vector: Sequence[float], k: int, *, embedder: str, dim: int) -> list[Hit]:
        answer = self._call(
            "POST",
            "/query",
            {
                "namespace": self._namespace(user_id),
                "vector": [float(x) for x in vector],
                "topK": k,
                "filter": {"embedder": {"$eq": embedder}},
                "includeMetadata": True,
                "includeValues": False,
            },
        )
        hits = []
        for match in answer.get("matches") or []:
            meta = match.get("metadata") or {}
            try:
                hits.append(
                    Hit(
                        document_id=int(meta["document_id"]),
                        generation=int(meta["generation"]),
                        position=int(meta["position"]),
                        text=str(meta["text"]),
                        score=float(match["score"]),
                    )
                )
            except (KeyError, TypeError, ValueError):
                continue  # a vector Inflow did not write: never returned
        return hits

    def _list_ids(self, namespace: str, prefix: str) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            params = {"namespace": namespace, "prefix": prefix, "limit": 100}
            if token:
                params["paginationToken"] = token
            answer = self._call("GET", "/vectors/list", params=params)
            ids += [row["id"] for row in answer.get("vectors") or [] if "id" in row]
            token = (answer.get("pagination") or {}).get("next")
            if not token:
                return ids

    def delete_document(self, user_id: int, document_id: int, *, older_than: int | None = None) -> None:
        namespace = self._namespace(user_id)
        ids = self._list_ids(namespace, f"d{document_id}:")
        if older_than is not None:
            ids = [i for i in ids if generation_of(i) < older_than]
        for start in range(0, len(ids), DELETE_BATCH):
            self._call("POST", "/vectors/delete", {"ids": ids[start : start + DELETE_BATCH], "namespace": namespace})

    def delete_namespace(self, user_id: int) -> None:
        try:
            self._call("POST", "/vectors/delete", {"deleteAll": True, "namespace": self._namespace(user_id)})
        except ServiceError as exc:
            if exc.http_status != 404:  # a namespace that never had vectors does not exist
                raise

    def count(self, user_id: int, document_id: int | None = None) -> int:
        namespace = self._namespace(user_id)
        if document_id is not None:
            return len(self._list_ids(namespace, f"d{document_id}:"))
        stats = self._call("POST", "/describe_index_stats", {})
        return int(((stats.get("namespaces") or {}).get(namespace) or {}).get("vectorCount", 0))
