"""The documents and chunks admin: constant queries, retry, delete, and the try-a-search page."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from knowledge.models import Chunk, Document
from knowledge.stores.pgvector import vector_literal

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/knowledge/document/"
SEARCH_PAGE = "/admin/knowledge/document/search/"
CHUNKS = "/admin/knowledge/chunk/"


def populate(make_user, add_document, count: int) -> None:
    for number in range(count):
        owner = make_user()
        add_document(owner, f"FAQ {number}", f"Question {number}: we open at {number} am.")
        Document.objects.create(user=owner, title=f"Stuck {number}", content="x", status="failed", error="boom")


def count_queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(path)
    assert response.status_code == 200
    return len(context.captured_queries)


def test_the_changelist_runs_a_constant_number_of_queries(staff, make_user, add_document):
    populate(make_user, add_document, 2)
    few = count_queries(staff, CHANGELIST)
    populate(make_user, add_document, 12)
    assert count_queries(staff, CHANGELIST) == few


def test_the_changelist_shows_status_progress_and_chunks(staff, user, add_document):
    add_document(user, "Parking", "Free parking behind the store.")
    Document.objects.create(user=user, title="Busy", content="x", status="indexing", chunks_done=3, chunks_total=8)

    page = staff.get(CHANGELIST).content.decode()

    assert "Parking" in page
    assert "3/8 (37%)" in page
    assert f"User {user.pk}" in page
    assert "Try a search" in page


def test_the_change_page_renders_read_only(staff, user, add_document):
    document = add_document(user, "Parking", "Free parking behind the store.")
    page = staff.get(f"{CHANGELIST}{document.pk}/change/")
    assert page.status_code == 200
    assert "Free parking behind the store." in page.content.decode()
    assert staff.get(f"{CHANGELIST}add/").status_code == 403


def test_the_retry_action_requeues_failed_documents(staff, user, add_document):
    ready = add_document(user, "ok", "fine")
    failed = Document.objects.create(user=user, title="f", content="x", status="failed", error="boom")

    response = staff.post(CHANGELIST, {"action": "retry", "_selected_action": [ready.pk, failed.pk]}, follow=True)

    assert "Queued 1 document(s)" in response.content.decode()
    assert "Skipped 1" in response.content.decode()
    assert Document.objects.get(pk=failed.pk).status == "queued"
    assert Document.objects.get(pk=ready.pk).status == "ready"


def test_deleting_in_the_admin_removes_the_chunks(staff, user, add_document):
    document = add_document(user, "Parking", "Free parking behind the store.")
    other = add_document(user, "Hours", "We open at 9 am.")
    response = staff.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [document.pk], "post": "yes"}, follow=True
    )
    assert response.status_code == 200
    # Chunks cannot be deleted on their own, but that does not stand in the way of their document's deletion.
    assert staff.get(f"{CHANGELIST}{other.pk}/delete/").status_code == 200
    assert staff.post(f"{CHANGELIST}{other.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Document.objects.exists()
    assert not Chunk.objects.exists()


def test_the_search_page_queries_one_users_knowledge_base(staff, user, other_user, add_document):
    add_document(user, "Parking", "Free parking behind the store.")
    add_document(other_user, "Secret", "Parking codes for staff only.")

    page = staff.get(SEARCH_PAGE, {"user": user.pk, "query": "parking", "k": 5}).content.decode()

    assert "Free parking behind the store." in page
    assert "Parking codes" not in page
    assert "hashing-v2 (384 dims)" in page


def test_the_search_page_explains_bad_input(staff, user, add_document):
    add_document(user, "Parking", "Free parking behind the store.")
    assert "There is no user 987654" in staff.get(SEARCH_PAGE, {"user": 987654, "query": "x"}).content.decode()
    with override_settings(EMBEDDINGS_DIM=64):
        page = staff.get(SEARCH_PAGE, {"user": user.pk, "query": "parking", "k": 5}).content.decode()
    assert "Run manage.py rebuild_knowledge" in page


def test_the_search_page_is_for_staff_only(user):
    client = Client()
    client.force_login(user)
    response = client.get(SEARCH_PAGE, {"user": user.pk, "query": "x"})
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_chunk_list_runs_a_constant_number_of_queries(staff, make_user, add_document):
    populate(make_user, add_document, 2)
    few = count_queries(staff, CHUNKS)
    populate(make_user, add_document, 12)
    assert count_queries(staff, CHUNKS) == few
    assert count_queries(staff, f"{CHUNKS}?q=FAQ") == count_queries(staff, f"{CHUNKS}?q=FAQ+3")


def test_the_chunk_list_shows_passages_never_their_vectors(staff, user, add_document):
    text = "Free parking behind the store for customers, every day from 8 am until the store closes at 8 pm."
    document = add_document(user, "Parking", text)
    chunk = Chunk.objects.get(document=document)

    page = staff.get(CHUNKS).content.decode()

    assert "Parking" in page
    assert f"User {user.pk}" in page
    assert "hashing-v2" in page
    assert "Free parking behind the store for customers, every day from 8 am until the stor…" in page
    assert text not in page
    for shown in (str(chunk.embedding), vector_literal(chunk.embedding)):
        assert shown[:20] not in page  # the vector itself is never on the page
    assert staff.get(f"{CHUNKS}add/").status_code == 403


def test_the_chunk_page_shows_the_dimension_and_norm_read_only(staff, user, add_document):
    document = add_document(user, "Parking", "Free parking behind the store.")
    chunk = Chunk.objects.get(document=document)

    response = staff.get(f"{CHUNKS}{chunk.pk}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    for shown in (str(chunk.embedding), vector_literal(chunk.embedding)):
        assert shown[:20] not in page
    assert "384 dimensions, norm 1.0000" in page
    assert "Free parking behind the store." in page
    assert "<textarea" not in page  # nothing to change
    assert 'name="_save"' not in page
    assert staff.post(f"{CHUNKS}{chunk.pk}/change/", {"text": "changed"}).status_code == 403
    assert staff.post(f"{CHUNKS}{chunk.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Chunk.objects.get(pk=chunk.pk).text == "Free parking behind the store."


def test_chunks_are_found_by_document_id_or_title_and_filtered_by_embedder(staff, user, add_document):
    parking = add_document(user, "Parking", "Free parking behind the store.")
    add_document(user, "Hours", "We open at 9 am.")

    by_id = staff.get(CHUNKS, {"q": str(parking.pk)}).content.decode()
    by_title = staff.get(CHUNKS, {"q": "park"}).content.decode()
    filtered = staff.get(CHUNKS, {"embedder": "hashing-v2", "dim": "384"}).content.decode()
    other = staff.get(CHUNKS, {"embedder": "openai/text-embedding-3-small"}).content.decode()

    for page in (by_id, by_title):
        assert "Free parking" in page
        assert "We open at 9 am." not in page
    assert "Free parking" in filtered
    assert "We open at 9 am." in filtered
    assert "Free parking" not in other
