"""System checks for the knowledge base settings: a bad value fails at startup, not mid-run."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from knowledge.embeddings import MAX_DIM, PROVIDERS
from knowledge.stores import STORES


@register()
def check_knowledge_settings(app_configs, **kwargs) -> list[Error]:
    errors = []

    def error(message: str, number: int) -> None:
        errors.append(Error(message, id=f"knowledge.E{number:03d}"))

    if settings.EMBEDDINGS_PROVIDER not in PROVIDERS:
        error(f"EMBEDDINGS_PROVIDER must be one of {', '.join(PROVIDERS)}.", 1)
    if not 1 <= settings.EMBEDDINGS_DIM <= MAX_DIM:
        error(f"EMBEDDINGS_DIM must be between 1 and {MAX_DIM}.", 2)
    if settings.EMBEDDINGS_PROVIDER == "sentence-transformers" and settings.EMBEDDINGS_DIM != 384:
        error("EMBEDDINGS_DIM must be 384 with sentence-transformers (all-MiniLM-L6-v2).", 3)
    if settings.VECTOR_STORE not in STORES:
        error(f"VECTOR_STORE must be one of {', '.join(STORES)}.", 4)
    if settings.VECTOR_STORE == "weaviate" and not settings.WEAVIATE_URL:
        error("VECTOR_STORE is weaviate: set WEAVIATE_URL.", 5)
    if settings.VECTOR_STORE == "pinecone" and not (settings.PINECONE_INDEX_HOST and settings.PINECONE_API_KEY):
        error("VECTOR_STORE is pinecone: set PINECONE_INDEX_HOST and PINECONE_API_KEY.", 6)
    if (
        settings.KNOWLEDGE_CHUNK_TOKENS < 1
        or not 0 <= settings.KNOWLEDGE_CHUNK_OVERLAP < settings.KNOWLEDGE_CHUNK_TOKENS
    ):
        error("KNOWLEDGE_CHUNK_TOKENS must be positive and KNOWLEDGE_CHUNK_OVERLAP smaller than it.", 7)
    if settings.KNOWLEDGE_EMBED_BATCH < 1:
        error("KNOWLEDGE_EMBED_BATCH must be at least 1.", 8)
    return errors
