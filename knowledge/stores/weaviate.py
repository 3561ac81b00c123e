"""The Weaviate store (weaviate-client v4): multi-tenant collections, one tenant per user.

A Weaviate vector index has one dimension, so there is one collection per dimension in
use (`InflowKnowledge384`, `InflowKnowledge1536`...), each multi-tenant with cosine HNSW
and vectors supplied by Inflow. Tenants (`user-<id>`) are created on a user's first write.
Deleting a document or a namespace goes through every Inflow collection, so vectors left
from before a dimension change are removed too. Object ids are UUIDv5 of
document:generation:position, so identical text in two documents never collides.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

from knowledge.errors import ServiceError, ServiceUnavailable, clean_remote_message
from knowledge.stores import ChunkVector, Hit, VectorStore, namespace_id

OBJECT_NAMESPACE = uuid.UUID("5f0c6a5e-8f0e-4d39-9a57-3c1f1f2b7a10")
VECTOR_NAME = "default"
SERVICE = "Weaviate"


@contextmanager
def _mapped_errors() -> Iterator[None]:
    from weaviate import exceptions as wx

    try:
        yield
    except (wx.WeaviateConnectionError, wx.WeaviateTimeoutError) as exc:
        raise ServiceUnavailable(f"{SERVICE} could not be reached ({type(exc).__name__}).") from None
    except wx.UnexpectedStatusCodeError as exc:
        status = getattr(exc, "status_code", 0) or 0
        error = ServiceUnavailable if status == 429 or status >= 500 else ServiceError
        raise error(f"{SERVICE} answered {status}: {clean_remote_message(exc.message)}", http_status=status) from None
    except wx.WeaviateBaseError as exc:
        raise ServiceError(f"{SERVICE} failed: {clean_remote_message(exc.message)}") from None


def ensure_tenant(tenants, name: str) -> None:
    """Create the tenant `name` through a collection's `tenants` API unless it exists.

    Two workers indexing a user's first documents at once both see no tenant; Weaviate
    refuses the second create (a duplicate tenant is an error status), which must not fail
    that document: the tenant it wanted is there.
    """
    from weaviate.classes.tenants import Tenant
    from weaviate.exceptions import UnexpectedStatusCodeError

    if tenants.exists(name):
        return
    try:
        tenants.create([Tenant(name=name)])
    except UnexpectedStatusCodeError:
        if not tenants.exists(name):
            raise


class WeaviateStore(VectorStore):
    name = "weaviate"
    transactional = False

    def __init__(self, url: str, *, api_key: str = "", grpc_port: int = 50051, collection_prefix: str) -> None:
        parts = urlsplit(url)
        self._http = (parts.hostname or "localhost", parts.port or (443 if parts.scheme == "https" else 8080))
        self._secure = parts.scheme == "https"
        self._grpc_port = grpc_port
        self._api_key = api_key
        self.prefix = collection_prefix
        self._client = None
        self._lock = threading.Lock()

    def client(self):
        import weaviate
        from weaviate.classes.init import Auth

        with self._lock:
            if self._client is None or not self._client.is_connected():
                with _mapped_errors():
                    self._client = weaviate.connect_to_custom(
                        http_host=self._http[0],
                        http_port=self._http[1],
                        http_secure=self._secure,
                        grpc_host=self._http[0],
                        grpc_port=self._grpc_port,
                        grpc_secure=self._secure,
                        auth_credentials=Auth.api_key(self._api_key) if self._api_key else None,
                    )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def collection_name(self, dim: int) -> str:
        return f"{self.prefix}{int(dim)}"

    @staticmethod
    def tenant(user_id: int) -> str:
        return f"user-{namespace_id(user_id)}"

    def _our_collections(self) -> list[str]:
        names = self.client().collections.list_all(simple=True)
        return [n for n in names if n.startswith(self.prefix) and n[len(self.prefix) :].isdigit()]

    def _collection(self, dim: int, *, create: bool):
        from weaviate.classes.config import Configure, DataType, Property, Tokenization, VectorDistances

        client = self.client()
        name = self.collection_name(dim)
        if not client.collections.exists(name):
            if not create:
                return None
            try:
                client.collections.create(
                    name,
                    multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_activation=True),
                    vector_config=Configure.Vectors.self_provided(
                        name=VECTOR_NAME,
                        vector_index_config=Configure.VectorIndex.hnsw(distance_metric=VectorDistances.COSINE),
                    ),
                    properties=[
                        Property(name="document_id", data_type=DataType.INT),
                        Property(name="generation", data_type=DataType.INT),
                        Property(name="position", data_type=DataType.INT),
                        Property(name="text", data_type=DataType.TEXT, index_filterable=False),
                        Property(name="embedder", data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                    ],
                )
            except Exception:
                # Another process may have created it in the meantime; anything else re-raises.
                if not client.collections.exists(name):
                    raise
        return client.collections.get(name)

    def prepare(self, dim: int) -> None:
        with _mapped_errors():
            self._collection(dim, create=True)

    def upsert(self, user_id: int, chunks: Sequence[ChunkVector], *, embedder: str, dim: int) -> None:
        from weaviate.classes.data import DataObject

        tenant = self.tenant(user_id)
        with _mapped_errors():
            collection = self._collection(dim, create=True)
            ensure_tenant(collection.tenants, tenant)
            objects = [
                DataObject(
                    uuid=uuid.uuid5(OBJECT_NAMESPACE, f"{c.document_id}:{c.generation}:{c.position}"),
                    properties={
                        "document_id": c.document_id,
                        "generation": c.generation,
                        "position": c.position,
                        "text": c.text,
                        "embedder": embedder,
                    },
                    vector={VECTOR_NAME: [float(x) for x in c.vector]},
                )
                for c in chunks
            ]
            result = collection.with_tenant(tenant).data.insert_many(objects)
        if result.has_errors:
            first = next(iter(result.errors.values()))
            raise ServiceError(f"{SERVICE} refused {len(result.errors)} objects: {clean_remote_message(first.message)}")

    def search(self, user_id: int, vector: Sequence[float], k: int, *, embedder: str, dim: int) -> list[Hit]:
        from weaviate.classes.query import Filter, MetadataQuery

        tenant = self.tenant(user_id)
        with _mapped_errors():
            collection = self._collection(dim, create=False)
            if collection is None or not collection.tenants.exists(tenant):
                return []
            answer = collection.with_tenant(tenant).query.near_vector(
                near_vector=[float(x) for x in vector],
                target_vector=VECTOR_NAME,
                limit=k,
                filters=Filter.by_property("embedder").equal(embedder),
                return_metadata=MetadataQuery(distance=True),
                return_properties=["document_id", "generation", "position", "text"],
            )
        return [
            Hit(
                document_id=int(o.properties["document_id"]),
                generation=int(o.properties["generation"]),
                position=int(o.properties["position"]),
                text=str(o.properties["text"]),
                score=1.0 - float(o.metadata.distance),
            )
            for o in answer.objects
        ]

    def delete_document(self, user_id: int, document_id: int, *, older_than: int | None = None) -> None:
        from weaviate.classes.query import Filter

        tenant = self.tenant(user_id)
        where = Filter.by_property("document_id").equal(document_id)
        if older_than is not None:
            where = where & Filter.by_property("generation").less_than(older_than)
        with _mapped_errors():
            for name in self._our_collections():
                collection = self.client().collections.get(name)
                if collection.tenants.exists(tenant):
                    collection.with_tenant(tenant).data.delete_many(where=where)

    def delete_namespace(self, user_id: int) -> None:
        tenant = self.tenant(user_id)
        with _mapped_errors():
            for name in self._our_collections():
                collection = self.client().collections.get(name)
                if collection.tenants.exists(tenant):
                    collection.tenants.remove([tenant])

    def count(self, user_id: int, document_id: int | None = None) -> int:
        from weaviate.classes.query import Filter

        tenant = self.tenant(user_id)
        total = 0
        with _mapped_errors():
            for name in self._our_collections():
                collection = self.client().collections.get(name)
                if not collection.tenants.exists(tenant):
                    continue
                filters = Filter.by_property("document_id").equal(document_id) if document_id is not None else None
                result = collection.with_tenant(tenant).aggregate.over_all(total_count=True, filters=filters)
                total += result.total_count or 0
        return total
