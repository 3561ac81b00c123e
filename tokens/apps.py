from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "Instagram and Facebook tokens"

    def ready(self) -> None:
        from flows import catalog
        from tokens.nodes import NODE_TYPES

        catalog.register(*NODE_TYPES)
