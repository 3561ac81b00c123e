"""Celery tasks: thin shells around knowledge/ingestion.py and the stores. They take ids."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flows.nodes import RetryPolicy, backoff
from knowledge import ingestion
from knowledge.errors import KnowledgeError
from knowledge.models import Document
from knowledge.stores import get_store

logger = logging.getLogger(__name__)

SWEEP_BATCH = 200


@shared_task(ignore_result=True, acks_late=True)
def ingest_document(document_id: int, generation: int) -> str:
    outcome = ingestion.ingest(document_id, generation)
    logger.info("knowledge document %s (generation %s): %s", document_id, generation, outcome)
    return outcome


@shared_task(ignore_result=True)
def sweep_documents() -> dict:
    """Hand documents nobody is working on to a worker again.

    - indexing with a stale heartbeat: the worker died (kill -9, OOM, deploy). Queued
      again, or failed once it has used up its attempts, so nothing stays "indexing";
    - queued for a while: the broker lost the message (Redis flushed or restarted).
    The claim in ingestion.claim() makes a duplicate message harmless.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.KNOWLEDGE_STALE_SECONDS)
    requeue_before = now - timedelta(seconds=settings.KNOWLEDGE_REQUEUE_SECONDS)
    with transaction.atomic():
        stale = list(
            Document.objects.select_for_update(skip_locked=True)
            .filter(status=Document.Status.INDEXING, heartbeat_at__lt=stale_before)
            .values_list("pk", "attempts")[:SWEEP_BATCH]
        )
        exhausted = [pk for pk, attempts in stale if attempts >= settings.KNOWLEDGE_MAX_ATTEMPTS]
        revived = [pk for pk, attempts in stale if attempts < settings.KNOWLEDGE_MAX_ATTEMPTS]
        Document.objects.filter(pk__in=exhausted).update(
            status=Document.Status.FAILED,
            lease=None,
            heartbeat_at=None,
            error=(
                f"Indexing stopped responding {settings.KNOWLEDGE_MAX_ATTEMPTS} times (the worker was lost). "
                "Retry it from the API or the admin."
            ),
        )
        Document.objects.filter(pk__in=revived).update(
            status=Document.Status.QUEUED,
            lease=None,
            heartbeat_at=None,
            enqueued_at=now,
            error="Indexing stopped responding (the worker was lost); queued again.",
        )
        lost = list(
            Document.objects.select_for_update(skip_locked=True)
            .filter(status=Document.Status.QUEUED, enqueued_at__lt=requeue_before)
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        Document.objects.filter(pk__in=lost).update(enqueued_at=now)
        to_enqueue = list(Document.objects.filter(pk__in=revived + lost).values_list("pk", "generation"))
        transaction.on_commit(lambda: [ingestion.enqueue(pk, generation) for pk, generation in to_enqueue])
    counts = {"failed": len(exhausted), "recovered": len(revived), "requeued": len(lost)}
    if any(counts.values()):
        logger.info("knowledge sweep: %s", counts)
    return counts


# An external store that is down may stay down for hours: the cleanups retry that long.
CLEANUP_RETRY = RetryPolicy(max_attempts=11, backoff_seconds=30.0, max_backoff_seconds=3600.0, jitter=False)


def _retry_delay(retries: int) -> float:
    return backoff(CLEANUP_RETRY, retries + 1)  # Celery counts retries, the policy attempts


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=CLEANUP_RETRY.max_attempts - 1)
def delete_document_vectors(self, user_id: int, document_id: int, older_than: int | None = None) -> None:
    """A document's vectors in an external store: all of them once it is deleted, or those of
    generations before `older_than`, queued with a countdown by a re-index (see
    OLD_VECTORS_KEPT_SECONDS). Searches use neither by the time this runs."""
    try:
        get_store().delete_document(user_id, document_id, older_than=older_than)
    except KnowledgeError as exc:
        raise self.retry(countdown=_retry_delay(self.request.retries), exc=exc) from None


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=CLEANUP_RETRY.max_attempts - 1)
def delete_namespace_vectors(self, user_id: int) -> None:
    """Everything a deleted user had in an external store: the tenant or namespace too."""
    try:
        get_store().delete_namespace(user_id)
    except KnowledgeError as exc:
        raise self.retry(countdown=_retry_delay(self.request.retries), exc=exc) from None
