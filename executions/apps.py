from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        from executions.nodes import NODE_TYPES
        from flows import catalog

        catalog.register(*NODE_TYPES)
