from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Conflict, NoInputSerializer, OwnedQuerysetMixin, check_no_input
from core.openapi import error
from core.ratelimit import ScopedRateThrottle
from knowledge import search, services
from knowledge.errors import KnowledgeError
from knowledge.models import Document
from knowledge.serializers import (
    DocumentListSerializer,
    DocumentSerializer,
    SearchQuerySerializer,
    SearchResponseSerializer,
)


class KnowledgeUnavailable(exceptions.APIException):
    """A KnowledgeError as an API answer: 409 mismatch, 503 unavailable, 502 refused."""

    def __init__(self, error: KnowledgeError) -> None:
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.status_code
        if error.retry_after is not None:
            self.wait = error.retry_after


class DocumentViewSet(OwnedQuerysetMixin, viewsets.ModelViewSet):
    """The caller's knowledge documents. Uploads are indexed in the background: watch `status`.

    Changing `title` or `content` re-indexes the document; until the new version is
    ready, searches keep answering from the previous one.
    """

    queryset = Document.objects.all()
    serializer_class = DocumentSerializer
    filterset_fields = ["status"]
    lookup_value_regex = "[0-9]+"  # not \d: it matches any script's digits, and int() reads them

    def get_serializer_class(self):
        return DocumentListSerializer if self.action == "list" else DocumentSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        return queryset.defer("content") if self.action == "list" else queryset

    def perform_create(self, serializer: DocumentSerializer) -> None:
        limit = settings.KNOWLEDGE_MAX_DOCUMENTS
        if Document.objects.filter(user=self.request.user).count() >= limit:
            raise serializers.ValidationError(f"A knowledge base holds at most {limit} documents; delete some first.")
        data = serializer.validated_data
        serializer.instance = services.create_document(
            user=self.request.user, title=data["title"], content=data["content"], source=data.get("source", "")
        )

    def perform_update(self, serializer: DocumentSerializer) -> None:
        serializer.instance = services.update_document(serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: Document) -> None:
        services.delete_document(instance)

    @extend_schema(
        request=NoInputSerializer,
        responses={
            202: DocumentSerializer,
            409: error("The document is ready, or being indexed right now: there is nothing to retry."),
        },
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Index a failed document again, or one stuck in queued/indexing (a lost worker)."""
        check_no_input(request)
        document = self.get_object()
        if not services.retry_documents(Document.objects.filter(pk=document.pk)):
            raise Conflict(
                f"Only failed documents, or ones stuck in queued or indexing, are retried; this one is "
                f"{document.status}. Change its content to index it again."
            )
        document.refresh_from_db()
        return Response(DocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)


class SearchView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "search"  # per user

    @extend_schema(
        parameters=[SearchQuerySerializer],
        responses={
            200: SearchResponseSerializer,
            409: error(
                "embedder_mismatch or store_mismatch: the knowledge base was built with another embedder or "
                "vector store than the server uses now; run manage.py rebuild_knowledge."
            ),
            502: error("service_error: the embeddings API or the vector store refused the request."),
            503: error(
                "service_unavailable: the embeddings API or the vector store is unreachable or overloaded; "
                "`Retry-After` may say when to try again."
            ),
        },
    )
    def get(self, request: Request) -> Response:
        """The passages of the caller's knowledge base closest to `q`, best first.

        Each result names its document as `{"id", "title"}`. A 409 means the server's
        embedder changed since the knowledge base was built: run manage.py rebuild_knowledge.
        """
        query = SearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            results = search.search(
                user_id=request.user.pk, query=query.validated_data["q"], k=query.validated_data["k"]
            )
        except KnowledgeError as exc:
            raise KnowledgeUnavailable(exc) from None
        return Response({"results": [result.as_dict() for result in results]})
