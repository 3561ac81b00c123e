from django.contrib.postgres.operations import CryptoExtension
from django.db import migrations

# Reading a value sealed with a key version that is not configured must fail with a message
# that says so, rather than pgcrypto's "Illegal argument to function" (see core/crypto.py).
MISSING_KEY_FUNCTION = """
CREATE OR REPLACE FUNCTION inflow_missing_pgcrypto_key(version integer) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'no pgcrypto key is configured for key version %', version
        USING HINT = 'Set PGCRYPTO_OLD_KEYS to include it, or finish rotate_pgcrypto_key.';
END
$$;
"""


class Migration(migrations.Migration):
    """pgcrypto encrypts personal data and Meta tokens (core/fields.py)."""

    initial = True
    dependencies: list = []
    operations = [
        CryptoExtension(),
        migrations.RunSQL(MISSING_KEY_FUNCTION, "DROP FUNCTION IF EXISTS inflow_missing_pgcrypto_key(integer);"),
    ]
