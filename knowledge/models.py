"""Knowledge documents and their chunks.

A document's text is split into chunks, each embedded and written to the vector store in
the owner's namespace. Which version of the chunks is live is decided here, in the primary
database, so every store (transactional or not) shows one consistent version:

- `generation` counts versions of the text: a re-upload (or a rebuild) makes a new one.
- `indexed_generation` is the version whose chunks searches may return; it switches only
  when a new version is completely stored. Until then the previous version keeps answering.
- Indexing runs hold a *lease*: the claim sets a fresh id and every later write is
  conditional on it, so a run overtaken by a re-upload or a recovery can no longer write.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from pgvector.django import VectorField


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        INDEXING = "indexing", "Indexing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="knowledge_documents", db_index=False
    )
    title = models.CharField(max_length=200)
    source = models.CharField(max_length=500, blank=True, help_text="Where the text came from (a URL, a file name).")
    content = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)

    generation = models.PositiveIntegerField(default=1, editable=False)
    indexed_generation = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # What the live chunks were built with; compared with the configured embedder.
    embedder = models.CharField(max_length=120, blank=True, editable=False)
    embedding_dim = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    # ...and where they were stored (VECTOR_STORE), compared with the configured store.
    vector_store = models.CharField(max_length=20, blank=True, editable=False)
    chunk_count = models.PositiveIntegerField(default=0, editable=False, help_text="Chunks of the live version.")
    # Progress of the current indexing run.
    chunks_done = models.PositiveIntegerField(default=0, editable=False)
    chunks_total = models.PositiveIntegerField(default=0, editable=False)

    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    lease = models.UUIDField(null=True, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "knowledge_documents"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="knowledge_documents_user"),
            # The sweeper's two questions, each answered from a small partial index.
            models.Index(fields=["heartbeat_at"], condition=Q(status="indexing"), name="knowledge_documents_indexing"),
            models.Index(fields=["enqueued_at"], condition=Q(status="queued"), name="knowledge_documents_queued"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def progress(self) -> dict[str, int]:
        return {"done": self.chunks_done, "total": self.chunks_total}


class Chunk(models.Model):
    """A passage of a document with its embedding: the table of the pgvector store.

    `embedding` has no fixed dimension, so one table serves every embedder; each dimension
    in use gets its own partial HNSW index over `embedding::vector(dim)` (see
    knowledge/stores/pgvector.py). Other stores keep their vectors elsewhere and leave this
    table empty.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    # The namespace, denormalised from the document so a search filters one table.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    generation = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    text = models.TextField()
    embedding = VectorField()
    embedder = models.CharField(max_length=120)
    dim = models.PositiveSmallIntegerField()

    class Meta:
        db_table = "knowledge_chunks"
        ordering = ["document", "generation", "position"]
        constraints = [
            # A chunk is identified by its document, so identical text in two documents are
            # two chunks, never one overwriting the other.
            models.UniqueConstraint(fields=["document", "generation", "position"], name="knowledge_chunks_identity"),
        ]

    def __str__(self) -> str:
        return f"Chunk {self.position} of document {self.document_id}"
