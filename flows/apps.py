from django.apps import AppConfig
from django.db.models.signals import post_migrate


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from flows import checks  # noqa: F401  (registers system checks)
        from flows.sync import sync_after_migrate

        # Like contenttypes and permissions: the catalog rows follow the code after migrate.
        post_migrate.connect(sync_after_migrate, sender=self)
