"""rotate_pgcrypto_key: resumable, readable throughout, new key only at the end."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import User
from core import crypto
from core.rotation import encrypted_columns, rotate_column, stale_count
from flows.models import Flow
from tokens.models import ApiToken

pytestmark = pytest.mark.django_db

NEW_KEY = "the-new-pgcrypto-key-with-'quotes'-and-%-" + "n" * 10


@pytest.fixture
def keys(settings):
    original = settings.PGCRYPTO_KEY

    def use(key: str, version: int, old: dict | None = None) -> None:
        settings.PGCRYPTO_KEY, settings.PGCRYPTO_KEY_VERSION, settings.PGCRYPTO_OLD_KEYS = key, version, old or {}
        crypto.keyring.cache_clear()

    yield original, use
    crypto.keyring.cache_clear()


def versions(table: str, column: str) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT get_byte({column}, 0) FROM {table} WHERE {column} IS NOT NULL")  # noqa: S608
        return {row[0] for row in cursor.fetchall()}


def seed(make_user, count: int = 5) -> None:
    for index in range(count):
        owner = make_user(email=f"rotate{index}@example.com", name=f"Person {index}")
        Flow.objects.create(user=owner, name="f", flow_data={"nodes": [], "edges": []})
        token = ApiToken(user=owner, provider="instagram", account_id=f"9{index:05d}")
        token.set_token(f"IGQ-token-{index:03d}-abcdefghijkl")
        token.save()


def test_rotation_is_resumable_and_readable_throughout(make_user, keys):
    original, use = keys
    seed(make_user)
    use(NEW_KEY, 2, old={1: original})
    users = next(c for c in encrypted_columns() if str(c) == "users.email")

    batches = rotate_column(users, batch_size=2)
    assert next(batches) == 2  # stop after one batch, as if interrupted
    batches.close()
    assert versions("users", "email") == {1, 2}
    assert sorted(User.objects.values_list("email", flat=True)) == [f"rotate{i}@example.com" for i in range(5)]

    call_command("rotate_pgcrypto_key", batch_size=3, stdout=open("/dev/null", "w"))  # noqa: SIM115

    for column in encrypted_columns():
        assert stale_count(column) == 0
        assert versions(column.table, column.column) <= {2}

    use(NEW_KEY, 2)  # the old key is gone: everything must read with the new one alone
    assert sorted(User.objects.values_list("name", flat=True)) == [f"Person {i}" for i in range(5)]
    assert sorted(ApiToken.objects.values_list("access_token", flat=True))[0] == "IGQ-token-000-abcdefghijkl"
    assert all(len(secret) > 20 for secret in Flow.objects.values_list("webhook_secret", flat=True))


def test_rotation_keeps_blind_index_lookups(make_user, keys):
    original, use = keys
    seed(make_user, count=2)
    use(NEW_KEY, 2, old={1: original})
    call_command("rotate_pgcrypto_key", stdout=open("/dev/null", "w"))  # noqa: SIM115
    use(NEW_KEY, 2)
    assert User.objects.get_by_email("ROTATE1@example.com").name == "Person 1"


def test_dry_run_counts_without_changing(make_user, keys, capsys):
    original, use = keys
    seed(make_user, count=3)
    use(NEW_KEY, 2, old={1: original})
    call_command("rotate_pgcrypto_key", dry_run=True)
    assert "users.email: 3 value(s) under an old key" in capsys.readouterr().out
    assert versions("users", "email") == {1}
