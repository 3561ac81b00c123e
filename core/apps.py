from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Inflow core"

    def ready(self) -> None:
        from core import checks  # noqa: F401  (registers system checks)
        from core.logging import install_record_factory

        install_record_factory()
