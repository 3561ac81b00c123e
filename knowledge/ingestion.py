"""Indexing a document: chunk, embed in batches, store, then switch the live version.

Status: queued → indexing → ready | failed. A run first *claims* the document with a
conditional UPDATE (queued and still at the generation it was asked for) that sets a fresh
lease; every later write is conditional on that lease, so a run overtaken by a re-upload,
a recovery or a rebuild stops without writing. The slow part (embedding) happens with
progress and a heartbeat per batch; the sweeper re-queues a run whose heartbeat went stale.

The switch to the new chunks is atomic:
- pgvector: new chunks are inserted, old ones deleted and the document marked ready in
  one transaction, so a search sees either all old or all new chunks;
- other stores: new chunks are written first under the new generation (searches ignore
  them: they only return the document's `indexed_generation`), then the document switches
  in one UPDATE, and the cleanup task deletes the old generation OLD_VECTORS_KEPT_SECONDS
  later (see knowledge/stores/__init__.py: Pinecone may not serve the new vectors at once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.queue import publish
from flows.nodes import RetryPolicy, backoff
from knowledge.chunking import chunk_text
from knowledge.embeddings import get_embedder
from knowledge.errors import KnowledgeError, LeaseLost, ServiceError
from knowledge.models import Document
from knowledge.search import check_embedder
from knowledge.stores import OLD_VECTORS_KEPT_SECONDS, ChunkVector, VectorStore, get_store

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# What stays of a deleted document's vectors in an external store when the cleanup task
# cannot be queued: searches already skip them (their document is gone).
UNREACHABLE = "its vectors stay in the store, skipped by every search, until the user's namespace is purged"


def enqueue(document_id: int, generation: int, countdown: float | None = None) -> None:
    from knowledge.tasks import ingest_document

    publish(ingest_document, (document_id, generation), countdown=countdown, backstop="the knowledge sweep re-sends it")


def enqueue_on_commit(document: Document) -> None:
    document_id, generation = document.pk, document.generation
    transaction.on_commit(lambda: enqueue(document_id, generation))


def claim(document_id: int, generation: int) -> uuid.UUID | None:
    lease = uuid.uuid4()
    claimed = Document.objects.filter(pk=document_id, generation=generation, status=Document.Status.QUEUED).update(
        status=Document.Status.INDEXING,
        lease=lease,
        heartbeat_at=timezone.now(),
        attempts=F("attempts") + 1,
        chunks_done=0,
        chunks_total=0,
    )
    return lease if claimed else None


def force_claim(document_id: int) -> tuple[int, uuid.UUID] | None:
    """Take a document whatever its state, as a new generation (rebuild_knowledge).

    None if the document no longer exists.
    """
    lease = uuid.uuid4()
    with transaction.atomic():
        claimed = Document.objects.filter(pk=document_id).update(
            generation=F("generation") + 1,
            status=Document.Status.INDEXING,
            lease=lease,
            heartbeat_at=timezone.now(),
            attempts=1,
            chunks_done=0,
            chunks_total=0,
        )
        if not claimed:
            return None
        generation = Document.objects.values_list("generation", flat=True).get(pk=document_id)
    return generation, lease


def _beat(document_id: int, lease: uuid.UUID, **fields) -> None:
    if not Document.objects.filter(pk=document_id, lease=lease).update(heartbeat_at=timezone.now(), **fields):
        raise LeaseLost(f"document {document_id} was taken over")


def index(
    document_id: int,
    generation: int,
    lease: uuid.UUID,
    *,
    check: bool = True,
    progress: Progress | None = None,
) -> int:
    """Index a claimed document; returns the number of chunks stored.

    `check=False` skips the comparison with the embedder of the user's other documents:
    rebuild_knowledge re-embeds them one after the other.
    """
    document = Document.objects.only("user_id", "title", "content").get(pk=document_id)
    user_id = document.user_id
    embedder = get_embedder()
    store = get_store()
    if check:
        check_embedder(user_id, embedder, exclude_document=document_id)
    store.prepare(embedder.dim)

    texts = chunk_text(document.content, settings.KNOWLEDGE_CHUNK_TOKENS, settings.KNOWLEDGE_CHUNK_OVERLAP)
    total = len(texts)
    _beat(document_id, lease, chunks_total=total)
    vectors: list[list[float]] = []
    batch_size = max(1, settings.KNOWLEDGE_EMBED_BATCH)
    for start in range(0, total, batch_size):
        # The title goes into every passage's embedding: it is often the best keyword.
        batch = [f"{document.title}\n{text}" for text in texts[start : start + batch_size]]
        vectors += embedder.embed_documents(batch)
        _beat(document_id, lease, chunks_done=len(vectors))
        if progress:
            progress(len(vectors), total)
    chunks = [
        ChunkVector(document_id, generation, position, text, vector)
        for position, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        if any(vector)
    ]
    if not chunks:
        raise ServiceError("The document has no words to index.")

    def finish() -> None:
        locked = Document.objects.select_for_update().filter(pk=document_id, lease=lease, generation=generation)
        if not locked.exists():
            raise LeaseLost(f"document {document_id} was taken over")
        if store.transactional:
            store.upsert(user_id, chunks, embedder=embedder.name, dim=embedder.dim)
            store.delete_document(user_id, document_id, older_than=generation)
        locked.update(
            status=Document.Status.READY,
            indexed_generation=generation,
            embedder=embedder.name,
            embedding_dim=embedder.dim,
            vector_store=store.name,
            chunk_count=len(chunks),
            chunks_done=total,
            error="",
            lease=None,
            heartbeat_at=None,
            indexed_at=timezone.now(),
        )

    if not store.transactional:
        store.upsert(user_id, chunks, embedder=embedder.name, dim=embedder.dim)
    try:
        with transaction.atomic():
            finish()
    except LeaseLost:
        if not store.transactional:
            _remove_if_deleted(store, user_id, document_id)
        raise
    if not store.transactional and generation > 1:  # generations start at 1: a first one replaced nothing
        transaction.on_commit(lambda: _delete_older_generations_later(store, user_id, document_id, generation))
    return len(chunks)


def _delete_older_generations_later(store: VectorStore, user_id: int, document_id: int, generation: int) -> None:
    """Queue the removal of the generations before `generation`, OLD_VECTORS_KEPT_SECONDS from now.

    Only older ones: a re-upload may be writing a newer generation by the time it runs.
    Without a broker they are removed now (the document may then vanish for a few seconds).
    """
    from knowledge.tasks import delete_document_vectors

    if publish(
        delete_document_vectors,
        (user_id, document_id, generation),
        countdown=OLD_VECTORS_KEPT_SECONDS,
        backstop="deleting them now instead",
    ):
        return
    try:
        store.delete_document(user_id, document_id, older_than=generation)
    except KnowledgeError as exc:
        # Searches stop using the old generation after OLD_VECTORS_KEPT_SECONDS; the next change removes it.
        logger.warning("document %s: old chunks not deleted yet: %s", document_id, exc.message)


def _remove_if_deleted(store: VectorStore, user_id: int, document_id: int) -> None:
    """Vectors just written for a document (or user) deleted while it was being embedded.

    The deletion's cleanup task may have run before this run's upsert, so without this
    they would stay in the external store for good. (Overtaken by a re-upload instead, they
    are ignored by searches and removed by the document's next switch or deletion.)
    """
    from accounts.models import User
    from knowledge.tasks import delete_document_vectors, delete_namespace_vectors

    if Document.objects.filter(pk=document_id).exists():
        return
    user_gone = not User.objects.filter(pk=user_id).exists()
    try:
        if user_gone:
            store.delete_namespace(user_id)
        else:
            store.delete_document(user_id, document_id)
    except KnowledgeError:
        # The cleanup tasks retry for hours.
        if user_gone:
            publish(delete_namespace_vectors, (user_id,), backstop=UNREACHABLE)
        else:
            publish(delete_document_vectors, (user_id, document_id), backstop=UNREACHABLE)


def fail(document_id: int, lease: uuid.UUID, message: str) -> None:
    Document.objects.filter(pk=document_id, lease=lease).update(
        status=Document.Status.FAILED, error=message[:2000], lease=None, heartbeat_at=None
    )


def retry_policy() -> RetryPolicy:
    # Exact delays: the document's error tells its owner when the next try comes.
    return RetryPolicy(
        max_attempts=settings.KNOWLEDGE_MAX_ATTEMPTS, backoff_seconds=10.0, max_backoff_seconds=300.0, jitter=False
    )


def ingest(document_id: int, generation: int) -> str:
    """What the Celery task runs. Returns what happened, for the worker log."""
    lease = claim(document_id, generation)
    if lease is None:
        return "skipped"  # indexed, re-uploaded, deleted, or another worker has it
    try:
        count = index(document_id, generation, lease)
    except LeaseLost:
        return "overtaken"
    except KnowledgeError as exc:
        attempts = Document.objects.values_list("attempts", flat=True).filter(pk=document_id).first() or 0
        policy = retry_policy()
        if exc.transient and attempts < policy.max_attempts:
            delay = max(backoff(policy, attempts), exc.retry_after or 0.0)
            requeued = Document.objects.filter(pk=document_id, lease=lease).update(
                status=Document.Status.QUEUED,
                lease=None,
                heartbeat_at=None,
                error=f"Attempt {attempts} failed, retrying in {delay:.0f} s: {exc.message}"[:2000],
                # In the future, so the sweeper does not enqueue it again before the retry.
                enqueued_at=timezone.now() + timedelta(seconds=delay),
            )
            if requeued:
                enqueue(document_id, generation, countdown=delay)
            return "retrying"
        fail(document_id, lease, exc.message)
        return "failed"
    except Exception as exc:
        logger.exception("document %s: indexing failed", document_id)
        fail(document_id, lease, f"Unexpected error while indexing ({type(exc).__name__}); see the worker log.")
        return "failed"
    return f"ready ({count} chunks)"
