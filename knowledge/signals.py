"""Removing a deleted user's vectors from an external store.

A signal, unusually for Inflow, because users are deleted by code that should not know
about vector stores (the admin, the GDPR purge's cascade). pgvector needs none of this:
its chunks are rows that cascade with the user.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction


def purge_deleted_user_vectors(sender, instance, **kwargs) -> None:
    if settings.VECTOR_STORE == "pgvector":
        return
    from core.queue import publish
    from knowledge.ingestion import UNREACHABLE
    from knowledge.tasks import delete_namespace_vectors

    user_id = instance.pk
    transaction.on_commit(lambda: publish(delete_namespace_vectors, (user_id,), backstop=UNREACHABLE))
