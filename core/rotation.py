"""Re-encrypt every EncryptedTextField column under the current pgcrypto key.

Each stored value starts with the version of the key that sealed it, so rotation is a
sweep over rows whose version is not the current one: resumable by construction (rerun
it and it continues where it stopped), and the application keeps reading throughout
because decryption picks the key by version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, transaction

from core.crypto import decrypt_sql, encrypt_sql, keyring
from core.fields import EncryptedTextField


@dataclass(frozen=True)
class EncryptedColumn:
    table: str
    column: str
    pk: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


def encrypted_columns() -> list[EncryptedColumn]:
    return [
        EncryptedColumn(model._meta.db_table, field.column, model._meta.pk.column)
        for model in apps.get_models()
        for field in model._meta.local_fields
        if isinstance(field, EncryptedTextField)
    ]


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def stale_count(column: EncryptedColumn) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {_quoted(column.table)} "  # noqa: S608 (identifiers from model metadata)
            f"WHERE {_quoted(column.column)} IS NOT NULL AND get_byte({_quoted(column.column)}, 0) <> %s",
            [keyring().current_version],
        )
        return cursor.fetchone()[0]


def rotate_column(column: EncryptedColumn, batch_size: int = 1000) -> Iterator[int]:
    """Re-encrypt one column batch by batch; yields the number of rows done per batch."""
    col, table, pk = _quoted(column.column), _quoted(column.table), _quoted(column.pk)
    plaintext_sql, decrypt_params = decrypt_sql(col)
    sealed_sql, (prefix, key, options) = encrypt_sql(plaintext_sql)
    # Rows are locked and skipped if busy, so the application can keep writing.
    statement = (
        f"UPDATE {table} SET {col} = {sealed_sql} WHERE {pk} IN ("  # noqa: S608 (identifiers from model metadata)
        f"SELECT {pk} FROM {table} WHERE {col} IS NOT NULL AND get_byte({col}, 0) <> %s "
        f"ORDER BY {pk} LIMIT %s FOR UPDATE SKIP LOCKED)"
    )
    params = [prefix, *decrypt_params, key, options, keyring().current_version, batch_size]
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, params)
            done = cursor.rowcount
        if not done:
            return
        yield done


def rotate_all(batch_size: int = 1000, report: Callable[[str], None] = print) -> dict[str, int]:
    totals: dict[str, int] = {}
    for column in encrypted_columns():
        remaining = stale_count(column)
        totals[str(column)] = 0
        if not remaining:
            report(f"{column}: nothing to re-encrypt")
            continue
        for done in rotate_column(column, batch_size):
            totals[str(column)] += done
            report(f"{column}: {totals[str(column)]}/{remaining} re-encrypted")
    return totals
