"""Ingestion and knowledge nodes through real Celery workers, Redis and the database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from core.testing import FakeHTTPServer, Reply, wait_for
from executions.models import FlowExecution
from flows.models import Flow
from knowledge.models import Chunk, Document
from knowledge.tasks import sweep_documents
from knowledge.tests.fakes import PINECONE_KEY, FakePinecone
from knowledge.tests.shop import DOCUMENTS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

DOCS = "/api/v1/knowledge/documents/"
API_KEY = "sk-worker-test-0123456789abcdefghij"


def wait_ready(document_id: int, timeout: float = 60) -> Document:
    wait_for(
        lambda: Document.objects.filter(pk=document_id, status__in=["ready", "failed"]).exists(),
        timeout,
        message=f"document {document_id} indexed",
    )
    return Document.objects.get(pk=document_id)


def upload(api, title: str, content: str) -> int:
    response = api.post(DOCS, {"title": title, "content": content}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def run_flow(api, user, node: dict, text: str) -> FlowExecution:
    flow = Flow.objects.create(
        user=user,
        name="answer",
        status=Flow.Status.ACTIVE,
        flow_data={
            "nodes": [{"id": "t", "type": "trigger.manual", "config": {}}, node],
            "edges": [{"source": "t", "target": node["id"]}],
        },
    )
    response = api.post(f"/api/v1/flows/{flow.pk}/run/", {"trigger_data": {"text": text}}, format="json")
    assert response.status_code == 202, response.json()
    execution_id = response.json()["id"]
    wait_for(
        lambda: FlowExecution.objects.filter(pk=execution_id, status__in=["succeeded", "failed"]).exists(),
        60,
        message=f"execution {execution_id} finished",
    )
    return FlowExecution.objects.get(pk=execution_id)


def test_an_upload_is_indexed_by_a_worker_and_becomes_searchable(worker, api, user):
    long_text = DOCUMENTS["Shipping"] * 6  # several chunks, more than one embedding batch
    document_id = upload(api, "Shipping", long_text)

    document = wait_ready(document_id)

    assert document.status == "ready", document.error
    assert document.chunk_count == Chunk.objects.filter(document_id=document_id).count() > 1
    assert document.progress == {"done": document.chunk_count, "total": document.chunk_count}
    assert (document.embedder, document.embedding_dim) == ("hashing-v2", 384)
    detail = api.get(f"{DOCS}{document_id}/").json()
    assert detail["status"] == "ready"
    results = api.get("/api/v1/knowledge/search/", {"q": "tracking number for my parcel"}).json()["results"]
    assert results[0]["document"] == {"id": document_id, "title": "Shipping"}


def test_a_reupload_is_indexed_again_and_replaces_the_chunks(worker, api, user):
    document_id = upload(api, "Hours", "We open at 9 am.")
    wait_ready(document_id)

    api.patch(f"{DOCS}{document_id}/", {"content": "We open at 10 am from Monday to Friday."}, format="json")
    wait_for(lambda: Document.objects.get(pk=document_id).indexed_generation == 2, 60, message="re-indexed")

    texts = list(Chunk.objects.filter(document_id=document_id).values_list("text", flat=True))
    assert texts == ["We open at 10 am from Monday to Friday."]


def test_a_document_stuck_in_indexing_is_recovered_by_the_sweep(worker, user):
    # As if a worker had claimed it and died: indexing, heartbeat long gone.
    stuck = Document.objects.create(
        user=user,
        title="Warranty",
        content=DOCUMENTS["Warranty and repairs"],
        status="indexing",
        attempts=1,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )

    assert sweep_documents() == {"failed": 0, "recovered": 1, "requeued": 0}

    document = wait_ready(stuck.pk)
    assert document.status == "ready", document.error
    assert document.attempts == 2
    assert document.error == ""


def test_ai_reply_asks_the_llm_with_the_owners_passages(start_worker, api, user, client_for, other_user):
    replies: list = []

    def respond(request):
        replies.append(request.json())
        return Reply(200, {"model": "gpt-test", "choices": [{"message": {"content": "Within 5 working days."}}]})

    with FakeHTTPServer(respond) as llm:
        start_worker(LLM_BASE_URL=llm.url, OPENAI_API_KEY=API_KEY)
        wait_ready(upload(api, "Returns and refunds", DOCUMENTS["Returns and refunds"]))
        wait_ready(upload(client_for(other_user), "Secret", "Our supplier discount code is ALPHA-42 for refunds."))
        node = {"id": "ai", "type": "ai.reply", "config": {"prompt": "You are the shop's assistant."}}

        execution = run_flow(api, user, node, "When will I get my refund?")

    assert execution.status == "succeeded", execution.error
    step = execution.execution_log[-1]
    assert step["output"]["reply"] == "Within 5 working days."
    assert step["output"]["mode"] == "llm"
    prompt = json.dumps(replies[0]["messages"])
    assert "we refund the money to the original payment method" in prompt
    assert "ALPHA-42" not in prompt  # another user's knowledge never reaches the prompt
    assert llm.received()[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in json.dumps(execution.execution_log)


def test_knowledge_nodes_read_only_the_flow_owners_namespace(worker, api, user, client_for, other_user):
    wait_ready(upload(client_for(other_user), "Secret", "Our supplier discount code is ALPHA-42."))
    wait_ready(upload(api, "Hours", "We open at 9 am."))
    search = {"id": "s", "type": "knowledge.search", "config": {"query": "{{ trigger.text }}", "k": 5}}

    execution = run_flow(api, user, search, "supplier discount code ALPHA-42")

    assert execution.status == "succeeded", execution.error
    assert execution.execution_log[-1]["output"]["count"] == 0
    owner = run_flow(client_for(other_user), other_user, search, "supplier discount code ALPHA-42")
    assert owner.execution_log[-1]["output"]["results"][0]["document"]["title"] == "Secret"
    extractive = run_flow(api, user, {"id": "a", "type": "ai.reply", "config": {}}, "When do you open?")
    assert extractive.execution_log[-1]["output"]["mode"] == "extractive"
    assert extractive.execution_log[-1]["output"]["reply"] == "We open at 9 am."


def test_pinecone_through_a_worker_and_a_deleted_user_leaves_nothing(start_worker, api, user, other_user, client_for):
    with FakePinecone() as pinecone:
        store = {"VECTOR_STORE": "pinecone", "PINECONE_INDEX_HOST": pinecone.url, "PINECONE_API_KEY": PINECONE_KEY}
        start_worker(**store)
        with override_settings(**store):
            document_id = upload(api, "Returns and refunds", DOCUMENTS["Returns and refunds"])
            wait_ready(upload(client_for(other_user), "Hours", "We open at 9 am."))
            assert wait_ready(document_id).status == "ready"
            namespace = f"user-{user.pk}"
            assert sorted(pinecone.namespaces[namespace]) == [f"d{document_id}:g1:p0"]
            results = api.get("/api/v1/knowledge/search/", {"q": "refund"}).json()["results"]
            assert results[0]["document"]["id"] == document_id

            user.delete()  # the worker removes the namespace once the deletion commits

            wait_for(lambda: namespace not in pinecone.namespaces, 30, message="namespace deleted")
        assert f"user-{other_user.pk}" in pinecone.namespaces
