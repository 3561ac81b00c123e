"""System checks for Inflow's own configuration."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def check_secrets(app_configs, **kwargs):
    errors = []
    if settings.PGCRYPTO_KEY_VERSION in settings.PGCRYPTO_OLD_KEYS:
        errors.append(
            Error(
                "PGCRYPTO_OLD_KEYS must not contain the current PGCRYPTO_KEY_VERSION.",
                id="inflow.E001",
            )
        )
    if settings.BLIND_INDEX_KEY == settings.PGCRYPTO_KEY:
        errors.append(Error("BLIND_INDEX_KEY must differ from PGCRYPTO_KEY.", id="inflow.E002"))
    return errors
