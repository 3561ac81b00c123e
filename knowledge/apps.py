from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_delete


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def ready(self) -> None:
        from flows import catalog
        from knowledge import checks  # noqa: F401  (registers system checks)
        from knowledge.nodes import NODE_TYPES
        from knowledge.signals import purge_deleted_user_vectors

        catalog.register(*NODE_TYPES)

        post_delete.connect(
            purge_deleted_user_vectors, sender=settings.AUTH_USER_MODEL, dispatch_uid="knowledge-purge-user-vectors"
        )
