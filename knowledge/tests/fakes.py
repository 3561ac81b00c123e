"""Local stand-ins for the remote services the knowledge base talks to.

FakePinecone plays the data-plane REST API of a Pinecone index (upsert, query, list,
delete, describe_index_stats) in memory, with exact cosine scores. It follows Pinecone's
documented request and answer shapes, so the store's HTTP code is exercised for real; it is
not Pinecone itself (no quotas). Its eventual consistency is played on demand: while
`lagging` is set, queries do not return the vectors upserted meanwhile, until `catch_up()`.
"""

from __future__ import annotations

import math
import threading

from core.testing import FakeHTTPServer, RecordedRequest, Reply

PINECONE_KEY = "pc-test-key-0123456789abcdef"


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class FakePinecone:
    def __init__(self, dimension: int | None = None) -> None:
        self.dimension = dimension
        self.namespaces: dict[str, dict[str, dict]] = {}
        self.lagging = False
        self.unseen: set[tuple[str, str]] = set()  # (namespace, id) upserted while lagging
        self.lock = threading.Lock()
        self.server = FakeHTTPServer(self.respond)

    def __enter__(self) -> FakePinecone:
        self.server.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self.server.url

    def catch_up(self) -> None:
        """Queries see every vector again, as Pinecone does a few seconds after an upsert."""
        with self.lock:
            self.lagging = False
            self.unseen.clear()

    def respond(self, request: RecordedRequest) -> Reply:
        if request.headers.get("api-key") != PINECONE_KEY:
            return Reply(401, {"code": 16, "message": "Invalid API Key", "details": []})
        handler = {
            ("POST", "/vectors/upsert"): self.upsert,
            ("POST", "/query"): self.query,
            ("GET", "/vectors/list"): self.list,
            ("POST", "/vectors/delete"): self.delete,
            ("POST", "/describe_index_stats"): self.stats,
        }.get((request.method, request.path))
        if handler is None:
            return Reply(404, {"code": 5, "message": f"{request.method} {request.path} not found"})
        with self.lock:
            return handler(request)

    def upsert(self, request: RecordedRequest) -> Reply:
        body = request.json()
        namespace = body.get("namespace", "")
        space = self.namespaces.setdefault(namespace, {})
        for vector in body["vectors"]:
            if self.dimension and len(vector["values"]) != self.dimension:
                message = f"Vector dimension {len(vector['values'])} does not match the dimension of the index"
                return Reply(400, {"code": 3, "message": message})
            space[vector["id"]] = {"values": vector["values"], "metadata": vector.get("metadata", {})}
            if self.lagging:
                self.unseen.add((namespace, vector["id"]))
        return Reply(200, {"upsertedCount": len(body["vectors"])})

    def query(self, request: RecordedRequest) -> Reply:
        body = request.json()
        namespace = body.get("namespace", "")
        space = self.namespaces.get(namespace, {})
        wanted = body.get("filter") or {}
        matches = []
        for vector_id, record in space.items():
            if (namespace, vector_id) in self.unseen:
                continue
            if any(record["metadata"].get(key) != condition["$eq"] for key, condition in wanted.items()):
                continue
            match = {"id": vector_id, "score": cosine(body["vector"], record["values"])}
            if body.get("includeMetadata"):
                match["metadata"] = record["metadata"]
            matches.append(match)
        matches.sort(key=lambda m: -m["score"])
        return Reply(200, {"matches": matches[: body["topK"]], "namespace": body.get("namespace", "")})

    def list(self, request: RecordedRequest) -> Reply:
        namespace = request.query.get("namespace", [""])[0]
        prefix = request.query.get("prefix", [""])[0]
        limit = int(request.query.get("limit", ["100"])[0])
        start = int(request.query.get("paginationToken", ["0"])[0])
        ids = sorted(i for i in self.namespaces.get(namespace, {}) if i.startswith(prefix))
        page = ids[start : start + limit]
        answer = {"vectors": [{"id": i} for i in page], "namespace": namespace}
        if start + limit < len(ids):
            answer["pagination"] = {"next": str(start + limit)}
        return Reply(200, answer)

    def delete(self, request: RecordedRequest) -> Reply:
        body = request.json()
        namespace = body.get("namespace", "")
        if body.get("deleteAll"):
            if namespace not in self.namespaces:
                return Reply(404, {"code": 5, "message": "Namespace not found"})
            del self.namespaces[namespace]
        else:
            space = self.namespaces.get(namespace, {})
            for vector_id in body.get("ids", []):
                space.pop(vector_id, None)
        return Reply(200, {})

    def stats(self, request: RecordedRequest) -> Reply:
        namespaces = {name: {"vectorCount": len(space)} for name, space in self.namespaces.items()}
        return Reply(200, {"namespaces": namespaces, "dimension": self.dimension or 0})
