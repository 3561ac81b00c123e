from __future__ import annotations

import math

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.models import User
from knowledge import search, services
from knowledge.embeddings import get_embedder
from knowledge.errors import KnowledgeError
from knowledge.models import Chunk, Document

TEXT_PREVIEW_CHARS = 80


class TrySearchForm(forms.Form):
    user = forms.IntegerField(min_value=1, label="User id", help_text="Whose knowledge base to search.")
    query = forms.CharField(max_length=search.MAX_QUERY_CHARS, widget=forms.TextInput(attrs={"size": 60}))
    k = forms.IntegerField(min_value=1, max_value=search.MAX_K, initial=5, label="Passages")

    def clean_user(self) -> int:
        user_id = self.cleaned_data["user"]
        if not User.objects.filter(pk=user_id).exists():
            raise forms.ValidationError(f"There is no user {user_id}.")
        return user_id


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Documents come in through the API (validated, size-limited); staff watch and repair."""

    list_display = ["id", "title", "owner", "status", "progress", "chunk_count", "embedder", "updated_at"]
    list_display_links = ["id", "title"]
    list_filter = ["status", "embedder"]
    search_fields = ["=id", "=user__id", "title"]
    show_full_result_count = False
    actions = ["retry"]
    fields = [
        "owner",
        "title",
        "source",
        "status",
        "error",
        "progress",
        "chunk_count",
        "embedder",
        "embedding_dim",
        "vector_store",
        "generation",
        "indexed_generation",
        "attempts",
        "heartbeat_at",
        "created_at",
        "updated_at",
        "indexed_at",
        "content",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("content")  # the list never shows the text
        return queryset

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="User", ordering="user_id")
    def owner(self, document: Document) -> str:
        # Linked by id: loading the user would decrypt its email for every row.
        url = reverse("admin:accounts_user_change", args=[document.user_id])
        return format_html('<a href="{}">User {}</a>', url, document.user_id)

    @admin.display(description="Progress")
    def progress(self, document: Document) -> str:
        if document.status == Document.Status.READY:
            return "done"
        if not document.chunks_total:
            return "—"
        percent = 100 * document.chunks_done // document.chunks_total
        return f"{document.chunks_done}/{document.chunks_total} ({percent}%)"

    @admin.action(description="Retry the selected failed or stuck documents")
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = services.retry_documents(queryset)
        skipped = queryset.count() - count
        self.message_user(request, f"Queued {count} document(s) for indexing.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Skipped {skipped}: ready, or being indexed by a live worker.", messages.WARNING
            )

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Chunks cannot be deleted on their own (ChunkAdmin), but they go with their document.
        perms_needed.discard(Chunk._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        services.delete_document(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        services.delete_documents(queryset)

    def get_urls(self):
        view = self.admin_site.admin_view(self.try_search_view)
        return [path("search/", view, name="knowledge_document_search"), *super().get_urls()]

    def try_search_view(self, request: HttpRequest) -> HttpResponse:
        """Try a query against one user's knowledge base, as their flows would see it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = TrySearchForm(request.GET or None)
        results = None
        if form.is_valid():
            try:
                found = search.search(
                    user_id=form.cleaned_data["user"], query=form.cleaned_data["query"], k=form.cleaned_data["k"]
                )
                results = [result.as_dict(1000) for result in found]
            except KnowledgeError as exc:
                form.add_error(None, exc.message)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Try a knowledge base search",
            "form": form,
            "results": results,
            "embedder": get_embedder(),
        }
        return TemplateResponse(request, "admin/knowledge/document/search.html", context)


class BuiltWithFilter(admin.SimpleListFilter):
    """Choices read from the documents, which record what their live chunks were built with:
    a DISTINCT over the chunks would scan the whole (large) table on every page view."""

    document_field: str

    def lookups(self, request, model_admin):
        values = (
            Document.objects.filter(indexed_generation__isnull=False)
            .order_by(self.document_field)
            .values_list(self.document_field, flat=True)
            .distinct()
        )
        return [(str(value), str(value)) for value in values]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class EmbedderFilter(BuiltWithFilter):
    title = "embedder"
    parameter_name = "embedder"
    document_field = "embedder"


class DimensionFilter(BuiltWithFilter):
    title = "dimension"
    parameter_name = "dim"
    document_field = "embedding_dim"


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    """The passages of the pgvector store (other stores keep theirs outside), to see what a
    search can return. Read-only: indexing writes chunks, deleting their document removes them."""

    list_display = [
        "id",
        "document_link",
        "owner",
        "generation",
        "position",
        "embedder",
        "dimension",
        "preview",
    ]
    list_display_links = ["id"]
    list_filter = [EmbedderFilter, DimensionFilter]
    list_select_related = ["document"]
    # The identity index's order, so a page is an index scan, not a sort of the table.
    ordering = ["document_id", "generation", "position"]
    sortable_by = []
    search_fields = ["document__title"]  # see get_search_results
    search_help_text = "A document id, or part of a document's title."
    show_full_result_count = False
    fields = ["document_link", "owner", "generation", "position", "embedder", "vector", "text"]
    readonly_fields = fields

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("document").defer("document__content")
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("embedding")  # 384 to 1536 floats a row, never shown in the list
        return queryset

    def get_search_results(self, request, queryset, search_term):
        # A number is a document id, looked up through the chunks' identity index; the default
        # "=document__id" would compare document_id::text and scan the table.
        term = search_term.strip()
        if term.isdecimal() and len(term) < 19:
            return queryset.filter(document_id=int(term)), False
        return super().get_search_results(request, queryset, term)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # one passage gone would leave its document incomplete: delete the document

    @admin.display(description="Document")
    def document_link(self, chunk: Chunk) -> str:
        url = reverse("admin:knowledge_document_change", args=[chunk.document_id])
        return format_html('<a href="{}">{}</a>', url, chunk.document.title)

    @admin.display(description="User")
    def owner(self, chunk: Chunk) -> str:
        # Linked by id: loading the user would decrypt its email for every row.
        url = reverse("admin:accounts_user_change", args=[chunk.user_id])
        return format_html('<a href="{}">User {}</a>', url, chunk.user_id)

    @admin.display(description="Dimension")
    def dimension(self, chunk: Chunk) -> int:
        return chunk.dim

    @admin.display(description="Text")
    def preview(self, chunk: Chunk) -> str:
        text = " ".join(chunk.text.split())
        return text if len(text) <= TEXT_PREVIEW_CHARS else text[: TEXT_PREVIEW_CHARS - 1].rstrip() + "…"

    @admin.display(description="Embedding")
    def vector(self, chunk: Chunk) -> str:
        norm = math.sqrt(sum(float(x) * float(x) for x in chunk.embedding))
        return f"{len(chunk.embedding)} dimensions, norm {norm:.4f}"
