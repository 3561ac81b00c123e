from __future__ import annotations

import pytest
from django.test import override_settings

from knowledge import ingestion, services
from knowledge.models import Document
from knowledge.tests.fakes import PINECONE_KEY, FakePinecone


@pytest.fixture
def add_document():
    """Create a document and index it in this process, through the real ingestion code."""

    def add(user, title: str, content: str, *, expect: str = "ready") -> Document:
        document = services.create_document(user=user, title=title, content=content)
        outcome = ingestion.ingest(document.pk, document.generation)
        document.refresh_from_db()
        assert document.status == expect, (outcome, document.error)
        return document

    return add


@pytest.fixture
def fake_pinecone():
    with FakePinecone() as fake:
        yield fake


@pytest.fixture
def pinecone_settings(fake_pinecone):
    """Run the knowledge base on the fake Pinecone index."""
    with override_settings(
        VECTOR_STORE="pinecone", PINECONE_INDEX_HOST=fake_pinecone.url, PINECONE_API_KEY=PINECONE_KEY
    ):
        yield fake_pinecone
