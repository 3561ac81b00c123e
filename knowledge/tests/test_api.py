"""The documents and search API: validation, ownership, errors as JSON."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.throttling import ScopedRateThrottle

from core.testing import FakeHTTPServer, Reply
from knowledge.models import Document

pytestmark = pytest.mark.django_db

DOCS = "/api/v1/knowledge/documents/"
SEARCH = "/api/v1/knowledge/search/"


def test_upload_queues_the_document_and_hides_internals(api, user):
    response = api.post(DOCS, {"title": "Refunds", "content": "Refunds take 5 days."}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued"
    assert body["progress"] == {"done": 0, "total": 0}
    assert body["content"] == "Refunds take 5 days."
    assert {"lease", "generation", "user", "attempts"}.isdisjoint(body)
    assert Document.objects.get(pk=body["id"]).user == user


def test_the_list_has_own_documents_without_their_text(api, client_for, other_user):
    api.post(DOCS, {"title": "Mine", "content": "x"}, format="json")
    client_for(other_user).post(DOCS, {"title": "Theirs", "content": "y"}, format="json")

    body = api.get(DOCS).json()

    assert [d["title"] for d in body["results"]] == ["Mine"]
    assert "content" not in body["results"][0]
    assert api.get(DOCS, {"status": "queued"}).json()["count"] == 1
    assert api.get(DOCS, {"status": "ready"}).json()["count"] == 0


def test_the_list_and_search_run_a_constant_number_of_queries(api, user, add_document):
    def queries(path: str, params: dict | None = None) -> int:
        with CaptureQueriesContext(connection) as context:
            assert api.get(path, params).status_code == 200
        return len(context.captured_queries)

    add_document(user, "Parking 0", "Free parking behind the store, spot 0.")
    api.get(DOCS)  # the first request of a client loads what later ones reuse
    few = queries(DOCS), queries(SEARCH, {"q": "parking", "k": 50})
    for number in range(1, 15):
        add_document(user, f"Parking {number}", f"Free parking behind the store, spot {number}.")

    assert (queries(DOCS), queries(SEARCH, {"q": "parking", "k": 50})) == few
    assert len(api.get(SEARCH, {"q": "parking", "k": 50}).json()["results"]) == 15


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"content": "text"}, "title"),
        ({"title": "T"}, "content"),
        ({"title": "T", "content": "   \n "}, "content"),
        ({"title": " ", "content": "text"}, "title"),
        ({"title": "T" * 201, "content": "text"}, "title"),
        ({"title": "T", "content": "text", "status": "ready", "owner": 3}, "owner"),
        ({"title": "T", "content": ["not", "text"]}, "content"),
    ],
)
def test_bad_documents_are_400_naming_the_field(api, payload, field):
    response = api.post(DOCS, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()


@override_settings(KNOWLEDGE_MAX_DOCUMENT_CHARS=1000)
def test_a_document_over_the_size_limit_is_refused_clearly(api):
    response = api.post(DOCS, {"title": "Big", "content": "word " * 300}, format="json")
    assert response.status_code == 400
    assert "At most 1000 characters" in response.json()["detail"]


@override_settings(KNOWLEDGE_MAX_DOCUMENTS=2)
def test_the_number_of_documents_is_capped(api):
    for number in range(2):
        assert api.post(DOCS, {"title": f"D{number}", "content": "x"}, format="json").status_code == 201
    response = api.post(DOCS, {"title": "D3", "content": "x"}, format="json")
    assert response.status_code == 400
    assert "at most 2 documents" in response.json()["detail"]


def test_another_users_document_is_a_404_for_every_verb(api, client_for, other_user):
    theirs = client_for(other_user).post(DOCS, {"title": "T", "content": "x"}, format="json").json()["id"]
    url = f"{DOCS}{theirs}/"

    assert api.get(url).status_code == 404
    assert api.patch(url, {"title": "mine now"}, format="json").status_code == 404
    assert api.put(url, {"title": "mine now", "content": "y"}, format="json").status_code == 404
    assert api.post(f"{url}retry/").status_code == 404
    assert api.delete(url).status_code == 404
    assert Document.objects.get(pk=theirs).title == "T"


def test_anonymous_callers_are_refused(anon):
    assert anon.get(DOCS).status_code in (401, 403)
    assert anon.get(SEARCH, {"q": "x"}).status_code in (401, 403)


def test_changing_the_content_reindexes(api, user, add_document):
    document = add_document(user, "Hours", "We open at 9.")
    url = f"{DOCS}{document.pk}/"

    renamed = api.patch(url, {"source": "https://example.com"}, format="json").json()
    assert renamed["status"] == "ready"

    edited = api.patch(url, {"content": "We open at 10."}, format="json")
    assert edited.status_code == 200
    assert edited.json()["status"] == "queued"
    assert edited.json()["chunk_count"] == 1  # the previous version still answers


def test_retry_requeues_failed_documents_and_refuses_ready_ones(api, user, add_document):
    ready = add_document(user, "OK", "Fine text.")
    failed = add_document(user, "???", "!!! ... ???", expect="failed")
    assert failed.error == "The document has no words to index."

    response = api.post(f"{DOCS}{failed.pk}/retry/")
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert response.json()["error"] == ""

    refused = api.post(f"{DOCS}{ready.pk}/retry/")
    assert refused.status_code == 409
    assert "this one is ready" in refused.json()["detail"]


def test_deleting_a_document_removes_it_from_search(api, user, add_document):
    document = add_document(user, "Parking", "Free parking behind the store.")
    assert api.get(SEARCH, {"q": "parking"}).json()["results"]

    assert api.delete(f"{DOCS}{document.pk}/").status_code == 204

    assert api.get(SEARCH, {"q": "parking"}).json() == {"results": []}
    assert api.get(f"{DOCS}{document.pk}/").status_code == 404


def test_search_answers_in_the_documented_shape(api, user, add_document):
    document = add_document(user, "Parking", "Free parking behind the store.")

    body = api.get(SEARCH, {"q": "Where can I park? parking", "k": 3}).json()

    assert body == {
        "results": [
            {
                "document": {"id": document.pk, "title": "Parking"},
                "text": "Free parking behind the store.",
                "score": pytest.approx(body["results"][0]["score"]),
            }
        ]
    }
    assert 0 < body["results"][0]["score"] <= 1


def test_search_sees_only_the_callers_namespace(api, client_for, other_user, add_document, user):
    add_document(user, "Secret", "Our supplier discount code is ALPHA-42.")

    theirs = client_for(other_user).get(SEARCH, {"q": "supplier discount code ALPHA-42"})

    assert theirs.status_code == 200
    assert theirs.json() == {"results": []}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x", "k": "0"},
        {"q": "x", "k": "51"},
        {"q": "x", "k": "many"},
        {"q": "x" * 1001},
    ],
)
def test_bad_search_parameters_are_400(api, params):
    response = api.get(SEARCH, params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_search_is_throttled_per_user(api, client_for, other_user, monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "search", "3/min")

    answers = [api.get(SEARCH, {"q": "parking"}) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[-1].json()["code"] == "throttled"
    assert int(answers[-1]["Retry-After"]) >= 1
    assert client_for(other_user).get(SEARCH, {"q": "parking"}).status_code == 200


def test_a_changed_embedder_is_a_409_telling_what_to_run(api, user, add_document):
    add_document(user, "Parking", "Free parking behind the store.")

    with override_settings(EMBEDDINGS_DIM=256):
        response = api.get(SEARCH, {"q": "parking"})

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The knowledge base was built with hashing-v2 (384 dims); the server now uses hashing-v2 "
        "(256 dims). Run manage.py rebuild_knowledge to re-embed it.",
        "code": "embedder_mismatch",
    }


def test_an_unavailable_embeddings_api_is_a_503_without_secrets(api, user):
    Document.objects.create(
        user=user, title="T", content="x", status="ready", indexed_generation=1, embedder="openai/m", embedding_dim=8
    )
    with (
        FakeHTTPServer(lambda request: Reply(503, {"error": {"message": "overloaded"}})) as server,
        override_settings(
            EMBEDDINGS_PROVIDER="openai",
            EMBEDDINGS_MODEL="m",
            EMBEDDINGS_DIM=8,
            EMBEDDINGS_BASE_URL=server.url,
            OPENAI_API_KEY="sk-secret-abcdefghijklmnop",
        ),
    ):
        response = api.get(SEARCH, {"q": "parking"})

    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert "overloaded" in response.json()["detail"]
    assert "sk-secret" not in response.content.decode()


def test_the_openapi_schema_documents_the_knowledge_endpoints(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    search = schema["paths"]["/api/v1/knowledge/search/"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"q", "k"}
    assert "/api/v1/knowledge/documents/{id}/retry/" in schema["paths"]
    result = schema["components"]["schemas"]["SearchResult"]["properties"]
    assert set(result) == {"document", "text", "score"}
