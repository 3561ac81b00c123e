"""What can go wrong in the knowledge base, in terms every caller can act on.

The API maps these to 4xx/5xx JSON answers, flow nodes to TransientError/PermanentError
and ingestion to a retry or a failed document. Messages are shown to clients and written
to execution logs, so they never carry an API key (see `clean_remote_message`).
"""

from __future__ import annotations

from django.conf import settings

from core.logging import REDACTED, redact

SECRET_SETTINGS = ("OPENAI_API_KEY", "PINECONE_API_KEY", "WEAVIATE_API_KEY")


class KnowledgeError(Exception):
    """Base class. `transient` says whether trying again later may help."""

    transient = False
    status_code = 502
    code = "knowledge_error"

    def __init__(self, message: str, *, retry_after: float | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        # The remote service's HTTP status, when the error is its answer.
        self.http_status = http_status


class EmbedderMismatch(KnowledgeError):
    """The namespace was built with another embedder or dimension than the configured one."""

    status_code = 409
    code = "embedder_mismatch"

    def __init__(self, built_with: str, built_dim: int, now_name: str, now_dim: int) -> None:
        super().__init__(
            f"The knowledge base was built with {built_with} ({built_dim} dims); the server now uses "
            f"{now_name} ({now_dim} dims). Run manage.py rebuild_knowledge to re-embed it."
        )


class StoreMismatch(KnowledgeError):
    """The namespace's chunks live in another vector store than the configured one."""

    status_code = 409
    code = "store_mismatch"

    def __init__(self, built_in: str, now_in: str) -> None:
        super().__init__(
            f"The knowledge base was indexed into {built_in}; the server now uses {now_in} (VECTOR_STORE). "
            "Run manage.py rebuild_knowledge to index it there."
        )


class ServiceUnavailable(KnowledgeError):
    """A timeout, a refused connection, a 429 or a 5xx from the embeddings API or a store."""

    transient = True
    status_code = 503
    code = "service_unavailable"


class ServiceError(KnowledgeError):
    """The embeddings API or a store refused the request for good (bad key, bad model...)."""

    status_code = 502
    code = "service_error"


class LeaseLost(Exception):
    """An indexing run was overtaken (re-upload, recovery, rebuild); it must stop writing."""


def clean_remote_message(text: str, limit: int = 300) -> str:
    """A remote error message made safe to show: redacted, one line, bounded.

    Services echo parts of a rejected key ("Incorrect API key provided: sk-ab...") and the
    message ends up in API answers and execution logs, so every configured key is cut out.
    """
    text = " ".join(str(text).split())
    for name in SECRET_SETTINGS:
        secret = getattr(settings, name, "")
        if secret:
            text = text.replace(secret, REDACTED)
    return redact(text)[:limit]
