from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from rest_framework import serializers

from core.api import RejectUnknownFieldsMixin
from core.openapi import NOT_BLANK
from knowledge.models import Document
from knowledge.search import MAX_K, MAX_QUERY_CHARS


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="Chunks embedded so far in the current indexing run.")
    total = serializers.IntegerField(help_text="Chunks in the current indexing run.")


class DocumentSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    progress = ProgressSerializer(read_only=True)

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "source",
            "content",
            "status",
            "error",
            "progress",
            "chunk_count",
            "embedder",
            "embedding_dim",
            "created_at",
            "updated_at",
            "indexed_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "error",
            "progress",
            "chunk_count",
            "embedder",
            "embedding_dim",
            "created_at",
            "updated_at",
            "indexed_at",
        ]
        extra_kwargs = {
            "title": {"trim_whitespace": True},
            # Kept as sent (leading spaces may matter), but not all whitespace: the validator
            # is also what the API schema shows as the field's pattern.
            "content": {
                "trim_whitespace": False,
                "validators": [RegexValidator(NOT_BLANK, "This field may not be blank.")],
                "help_text": "Plain text, at most KNOWLEDGE_MAX_DOCUMENT_CHARS (200,000 by default) characters; "
                "chunked and embedded after upload.",
            },
        }

    def validate_content(self, value: str) -> str:
        limit = settings.KNOWLEDGE_MAX_DOCUMENT_CHARS
        if len(value) > limit:
            raise serializers.ValidationError(
                f"At most {limit} characters per document (this one has {len(value)}); split it into several."
            )
        return value


class DocumentListSerializer(DocumentSerializer):
    """The list leaves out the (possibly long) text."""

    class Meta(DocumentSerializer.Meta):
        fields = [name for name in DocumentSerializer.Meta.fields if name != "content"]


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=MAX_QUERY_CHARS, help_text="What to look for.")
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=5, help_text="How many passages, 1 to 50.")


class SearchDocumentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()


class SearchResultSerializer(serializers.Serializer):
    document = SearchDocumentSerializer(help_text="The document the passage comes from.")
    text = serializers.CharField(help_text="The passage.")
    score = serializers.FloatField(help_text="Cosine similarity to the query; higher is closer.")


class SearchResponseSerializer(serializers.Serializer):
    results = SearchResultSerializer(many=True)
