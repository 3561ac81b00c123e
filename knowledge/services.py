"""Changing documents: each change that affects the index queues the indexing work.

The API and the admin call these; they never touch the vector store directly.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.queue import publish
from knowledge.ingestion import UNREACHABLE, enqueue_on_commit
from knowledge.models import Document

# Fields whose change means new chunks: the title is embedded with every passage.
INDEXED_FIELDS = ("title", "content")


def _schedule_vector_cleanup(user_id: int, document_id: int) -> None:
    """pgvector chunks go with the row (ON DELETE CASCADE); other stores need a call."""
    if settings.VECTOR_STORE == "pgvector":
        return
    from knowledge.tasks import delete_document_vectors

    transaction.on_commit(lambda: publish(delete_document_vectors, (user_id, document_id), backstop=UNREACHABLE))


@transaction.atomic
def create_document(*, user, title: str, content: str, source: str = "") -> Document:
    document = Document.objects.create(
        user=user, title=title, content=content, source=source, enqueued_at=timezone.now()
    )
    enqueue_on_commit(document)
    return document


@transaction.atomic
def update_document(document: Document, **changes: str) -> Document:
    """Apply changes; new text makes a new generation, indexed while the old one answers."""
    changed = {name: value for name, value in changes.items() if getattr(document, name) != value}
    if not changed:
        return document
    if any(name in INDEXED_FIELDS for name in changed):
        Document.objects.filter(pk=document.pk).update(
            **changed, **fresh_queue_state(), generation=F("generation") + 1, updated_at=timezone.now()
        )
        document.refresh_from_db()
        enqueue_on_commit(document)
    else:
        for name, value in changed.items():
            setattr(document, name, value)
        document.save(update_fields=[*changed, "updated_at"])
    return document


def fresh_queue_state() -> dict:
    """The fields that put a document back in the queue, as if never tried."""
    return {
        "status": Document.Status.QUEUED,
        "lease": None,
        "heartbeat_at": None,
        "attempts": 0,
        "chunks_done": 0,
        "chunks_total": 0,
        "error": "",
        "enqueued_at": timezone.now(),
    }


def retryable() -> Q:
    """Failed documents, and queued or indexing ones nobody seems to be working on."""
    stale = timezone.now() - timedelta(seconds=settings.KNOWLEDGE_STALE_SECONDS)
    return (
        Q(status=Document.Status.FAILED)
        | Q(status=Document.Status.QUEUED)
        | Q(status=Document.Status.INDEXING, heartbeat_at__lt=stale)
    )


@transaction.atomic
def retry_documents(documents) -> int:
    """Queue documents again from a fresh start; returns how many were."""
    ids = list(documents.filter(retryable()).select_for_update(skip_locked=True).values_list("pk", flat=True))
    Document.objects.filter(pk__in=ids).update(**fresh_queue_state())
    for document in Document.objects.filter(pk__in=ids).only("pk", "generation"):
        enqueue_on_commit(document)
    return len(ids)


@transaction.atomic
def delete_document(document: Document) -> None:
    delete_documents(Document.objects.filter(pk=document.pk))


@transaction.atomic
def delete_documents(documents) -> int:
    # Lock first: an indexing run finishing right now holds the row while it inserts its
    # chunks. Waiting for it means the cascade below sees (and deletes) those chunks too,
    # instead of the delete tripping over rows it did not know about.
    pairs = list(documents.select_for_update().values_list("user_id", "pk"))
    Document.objects.filter(pk__in=[pk for _, pk in pairs]).delete()
    for user_id, document_id in pairs:
        _schedule_vector_cleanup(user_id, document_id)
    return len(pairs)
