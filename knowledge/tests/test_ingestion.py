"""Ingestion's state machine: claims, leases, retries, the sweep, embedder checks."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from core.testing import FakeHTTPServer, Reply
from knowledge import ingestion, search, services
from knowledge.errors import LeaseLost
from knowledge.models import Chunk, Document
from knowledge.stores import OLD_VECTORS_KEPT_SECONDS, get_store
from knowledge.stores.pgvector import CREATE_INDEX_SQL, ensure_index, index_exists
from knowledge.tasks import delete_document_vectors, sweep_documents

pytestmark = pytest.mark.django_db


def test_a_document_is_claimed_once(user):
    document = services.create_document(user=user, title="T", content="text")
    assert ingestion.claim(document.pk, document.generation) is not None
    assert ingestion.claim(document.pk, document.generation) is None
    assert ingestion.ingest(document.pk, document.generation) == "skipped"


def test_a_stale_message_for_an_old_generation_is_skipped(user, add_document):
    document = add_document(user, "T", "first text")
    services.update_document(document, content="second text")
    assert ingestion.ingest(document.pk, 1) == "skipped"
    assert ingestion.ingest(document.pk, 2).startswith("ready")


def test_a_run_overtaken_by_a_reupload_writes_nothing(user):
    document = services.create_document(user=user, title="T", content="old text")
    lease = ingestion.claim(document.pk, 1)
    services.update_document(document, content="new text")  # generation 2, lease cleared

    with pytest.raises(LeaseLost):
        ingestion.index(document.pk, 1, lease)

    assert not Chunk.objects.filter(document=document).exists()
    assert Document.objects.get(pk=document.pk).status == "queued"


def test_a_transient_embeddings_failure_is_retried_then_fails(user, settings):
    with (
        FakeHTTPServer(lambda request: Reply(503, {"error": {"message": "overloaded"}})) as server,
        override_settings(
            EMBEDDINGS_PROVIDER="openai", EMBEDDINGS_MODEL="m", EMBEDDINGS_DIM=8, EMBEDDINGS_BASE_URL=server.url
        ),
    ):
        document = services.create_document(user=user, title="T", content="text")

        assert ingestion.ingest(document.pk, 1) == "retrying"
        document.refresh_from_db()
        assert document.status == "queued"
        assert document.error.startswith("Attempt 1 failed, retrying in 10 s: The embeddings API answered 503")
        assert document.enqueued_at > timezone.now()  # the sweeper leaves it to the countdown

        Document.objects.filter(pk=document.pk).update(attempts=settings.KNOWLEDGE_MAX_ATTEMPTS - 1)
        assert ingestion.ingest(document.pk, 1) == "failed"
    document.refresh_from_db()
    assert document.status == "failed"
    assert "overloaded" in document.error


def test_ingestion_refuses_to_mix_embedders_but_a_lone_document_may_switch(user, add_document):
    first = add_document(user, "Hours", "We open at 9 am.")

    with override_settings(EMBEDDINGS_DIM=256):
        second = add_document(user, "Parking", "Free parking.", expect="failed")
        assert "built with hashing-v2 (384 dims)" in second.error
        assert "rebuild_knowledge" in second.error

        services.delete_document(second)
        services.update_document(first, content="We open at 10 am.")
        assert ingestion.ingest(first.pk, first.generation).startswith("ready")

    assert set(Chunk.objects.filter(user=user).values_list("dim", flat=True)) == {256}


def test_the_sweep_recovers_stale_work_and_gives_up_after_the_attempts(user, settings):
    old = timezone.now() - timedelta(hours=1)
    fresh = Document.objects.create(
        user=user, title="live", content="x", status="indexing", heartbeat_at=timezone.now()
    )
    Document.objects.create(user=user, title="stale", content="x", status="indexing", heartbeat_at=old)
    dead = Document.objects.create(
        user=user,
        title="dead",
        content="x",
        status="indexing",
        heartbeat_at=old,
        attempts=settings.KNOWLEDGE_MAX_ATTEMPTS,
    )
    lost = Document.objects.create(user=user, title="lost", content="x", status="queued", enqueued_at=old)

    assert sweep_documents() == {"failed": 1, "recovered": 1, "requeued": 1}

    statuses = dict(Document.objects.values_list("title", "status"))
    assert statuses == {"live": "indexing", "stale": "queued", "dead": "failed", "lost": "queued"}
    assert "stopped responding" in Document.objects.get(pk=dead.pk).error
    assert Document.objects.get(pk=lost.pk).enqueued_at > old
    assert Document.objects.get(pk=fresh.pk).heartbeat_at is not None
    assert sweep_documents() == {"failed": 0, "recovered": 0, "requeued": 0}


def test_retry_resets_failed_and_stuck_documents_only(user, add_document):
    ready = add_document(user, "ok", "fine")
    failed = Document.objects.create(user=user, title="f", content="x", status="failed", attempts=3, error="boom")
    busy = Document.objects.create(user=user, title="b", content="x", status="indexing", heartbeat_at=timezone.now())

    assert services.retry_documents(Document.objects.all()) == 1

    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == ("queued", 0, "")
    assert Document.objects.get(pk=ready.pk).status == "ready"
    assert Document.objects.get(pk=busy.pk).status == "indexing"


@pytest.fixture
def cleanups(monkeypatch) -> list[tuple[tuple, float | None]]:
    """The cleanup tasks ingestion queues, as (args, countdown): recorded at the broker's door."""
    sent: list[tuple[tuple, float | None]] = []
    monkeypatch.setattr(
        delete_document_vectors, "apply_async", lambda args, countdown=None: sent.append((args, countdown))
    )
    return sent


def reindex(document: Document, content: str, capture) -> None:
    """A re-upload indexed as a worker does it: outside a transaction, so on_commit runs."""
    services.update_document(document, content=content)
    with capture(execute=True):
        assert ingestion.ingest(document.pk, document.generation).startswith("ready")


def texts(user, query: str) -> list[str]:
    return [result.text for result in search.search(user_id=user.pk, query=query, k=5)]


def test_pinecone_keeps_one_live_version_and_deleted_documents_out_of_results(
    user, add_document, pinecone_settings, cleanups, django_capture_on_commit_callbacks
):
    document = add_document(user, "Hours", "We open at 9 am every weekday.")
    namespace = pinecone_settings.namespaces[f"user-{user.pk}"]
    assert sorted(namespace) == [f"d{document.pk}:g1:p0"]
    assert namespace[f"d{document.pk}:g1:p0"]["metadata"]["embedder"] == "hashing-v2"

    reindex(document, "We open at 11 am on weekdays.", django_capture_on_commit_callbacks)
    # The old generation is deleted later, by the cleanup task; meanwhile searches skip it,
    # even for a query it matches better than the live one.
    assert cleanups == [((user.pk, document.pk, 2), OLD_VECTORS_KEPT_SECONDS)]
    assert sorted(namespace) == [f"d{document.pk}:g1:p0", f"d{document.pk}:g2:p0"]
    assert texts(user, "open at 9 am every weekday") == ["We open at 11 am on weekdays."]
    delete_document_vectors(*cleanups[0][0])  # its countdown is over
    assert sorted(namespace) == [f"d{document.pk}:g2:p0"]
    assert texts(user, "open weekdays") == ["We open at 11 am on weekdays."]

    document_id = document.pk
    services.delete_document(document)
    # The store still holds the vectors until the cleanup task runs; search ignores them.
    assert search.search(user_id=user.pk, query="open weekdays", k=5) == []
    assert delete_document_vectors.apply(args=(user.pk, document_id)).successful()
    assert namespace == {}


def test_a_reindexed_document_answers_while_pinecone_catches_up(
    user, add_document, pinecone_settings, cleanups, django_capture_on_commit_callbacks
):
    document = add_document(user, "Hours", "We open at 9 am every weekday.")
    pinecone_settings.lagging = True  # queries do not see the vectors upserted from now on

    reindex(document, "We open at 11 am on weekdays.", django_capture_on_commit_callbacks)

    assert Document.objects.get(pk=document.pk).indexed_generation == 2
    # Pinecone does not return generation 2 yet: the previous version answers, as it did
    # until the switch, rather than the document vanishing from the results.
    assert texts(user, "when do you open on weekdays") == ["We open at 9 am every weekday."]
    pinecone_settings.catch_up()
    assert texts(user, "when do you open on weekdays") == ["We open at 11 am on weekdays."]
    assert texts(user, "open at 9 am every weekday") == ["We open at 11 am on weekdays."]

    # Long after the switch, a previous generation left behind never answers again.
    pinecone_settings.lagging = True
    reindex(document, "We open at noon on weekdays.", django_capture_on_commit_callbacks)
    Document.objects.filter(pk=document.pk).update(
        indexed_at=timezone.now() - timedelta(seconds=OLD_VECTORS_KEPT_SECONDS + 1)
    )
    assert texts(user, "when do you open on weekdays") == []
    pinecone_settings.catch_up()
    assert texts(user, "when do you open on weekdays") == ["We open at noon on weekdays."]


def test_without_a_broker_the_old_generation_is_deleted_at_once(
    user, add_document, pinecone_settings, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(delete_document_vectors, "apply_async", unreachable)
    document = add_document(user, "Hours", "We open at 9 am every weekday.")

    reindex(document, "We open at 11 am on weekdays.", django_capture_on_commit_callbacks)

    assert sorted(pinecone_settings.namespaces[f"user-{user.pk}"]) == [f"d{document.pk}:g2:p0"]
    assert "deleting them now instead" in caplog.text


def test_pgvector_swaps_in_one_transaction_and_queues_no_cleanup(
    user, add_document, cleanups, django_capture_on_commit_callbacks
):
    document = add_document(user, "Hours", "We open at 9 am every weekday.")
    reindex(document, "We open at 11 am on weekdays.", django_capture_on_commit_callbacks)
    assert cleanups == []
    assert list(Chunk.objects.filter(document=document).values_list("generation", "text")) == [
        (2, "We open at 11 am on weekdays.")
    ]


@pytest.mark.parametrize("deleted", ["document", "user"])
def test_vectors_written_after_a_deletion_are_removed(user, pinecone_settings, deleted):
    document = services.create_document(user=user, title="Hours", content="We open at 9 am every weekday.")
    lease = ingestion.claim(document.pk, 1)
    document_id, user_id = document.pk, user.pk

    def delete_while_embedding(done: int, total: int) -> None:
        # The client deletes while the batch is embedded; the deletion's cleanup runs at once, before the upsert.
        if deleted == "document":
            services.delete_document(Document.objects.get(pk=document_id))
            get_store().delete_document(user_id, document_id)
        else:
            user.delete()
            get_store().delete_namespace(user_id)

    with pytest.raises(LeaseLost):
        ingestion.index(document_id, 1, lease, progress=delete_while_embedding)

    assert pinecone_settings.namespaces.get(f"user-{user_id}", {}) == {}
    if deleted == "user":
        assert f"user-{user_id}" not in pinecone_settings.namespaces


@pytest.mark.django_db(transaction=True)
def test_two_processes_creating_a_dimensions_index_at_once_both_succeed():
    other = connection.copy()  # another process, midway through creating the index
    other.connect()
    other.set_autocommit(False)
    results: list = []

    def ensure() -> None:
        try:
            results.append(ensure_index(77))
        except Exception as exc:
            results.append(exc)
        finally:
            connection.close()

    try:
        with other.cursor() as cursor:
            cursor.execute(CREATE_INDEX_SQL.format(dim=77))
        thread = threading.Thread(target=ensure)
        thread.start()
        time.sleep(0.5)  # it waits for the other transaction
        other.commit()
        thread.join(10)
        assert results == [False]
        assert index_exists(77)
    finally:
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS knowledge_chunks_hnsw_77")
