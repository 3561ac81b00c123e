"""EncryptedTextField: a text column sealed with pgcrypto AES-256 inside PostgreSQL.

Writes wrap the value in `pgp_sym_encrypt(...)`; reads wrap the column in
`pgp_sym_decrypt(...)` through `select_format`, so model instances, `values()` and
`select_related()` all see plaintext. Keys travel only as bound parameters (the database
connection uses server-side binding), never inside the statement text.

The ciphertext cannot be searched: filtering on the field raises, except `isnull`. Pair it
with a blind index column when lookups are needed (see accounts.User.email_hash).

Adding this field to a table that already has rows cannot use a column default (the value
has to be encrypted inside PostgreSQL): add it nullable, backfill through the ORM in a
RunPython step, then make it required.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import FieldError
from django.core.validators import MaxLengthValidator
from django.db import models

from core.crypto import decrypt_sql, encrypt_sql


class Encrypted:
    """A value to be encrypted on save; compiled by Django's INSERT/UPDATE compilers."""

    def __init__(self, value: str) -> None:
        self.value = value

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        sql, (prefix, key, options) = encrypt_sql()
        return sql, [prefix, self.value, key, options]

    def __repr__(self) -> str:  # never show the plaintext in tracebacks
        return "Encrypted(<redacted>)"


class EncryptedTextField(models.Field):
    description = "Text encrypted with pgcrypto (AES-256, key version prefixed)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # max_length only shapes forms and validation; the column is bytea.
        super().__init__(*args, **kwargs)
        if self.max_length is not None:
            self.validators.append(MaxLengthValidator(self.max_length))

    def db_type(self, connection) -> str:
        return "bytea"

    def get_internal_type(self) -> str:
        return "EncryptedTextField"

    def to_python(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return str(value)

    def get_db_prep_save(self, value: Any, connection) -> Encrypted | None:
        if hasattr(value, "as_sql"):
            # Django passes expressions here too: bulk_update()'s CASE, update(f=F(...)),
            # create(f=Value(...)). to_python() would turn one into its repr, and that text
            # would be encrypted and stored in place of the value.
            raise FieldError(
                f"{self.model.__name__}.{self.name} is encrypted: write plain strings (save(), "
                "update(field='text')), not expressions or bulk_update()."
            )
        value = self.to_python(value)
        if value is None:
            return None
        return Encrypted(value)

    def select_format(self, compiler, sql: str, params: list) -> tuple[str, list]:
        return decrypt_sql(sql, params)

    def get_lookup(self, lookup_name: str):
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        raise FieldError(
            f"{self.model.__name__}.{self.name} is encrypted and cannot be filtered with "
            f"'{lookup_name}'; use its blind index instead."
        )

    def get_transform(self, lookup_name: str):
        return None

    def formfield(self, **kwargs: Any) -> forms.Field:
        defaults = {"form_class": forms.CharField, "max_length": self.max_length}
        defaults.update(kwargs)
        return super().formfield(**defaults)
