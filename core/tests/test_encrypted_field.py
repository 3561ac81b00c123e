"""The encrypted field: AES-256 ciphertext at rest, keys only as bound parameters."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from django.core.exceptions import FieldError
from django.db import connection, transaction

from accounts.models import User
from core import crypto

AES256 = 9  # OpenPGP symmetric algorithm id
SKESK_PACKET = 3  # Symmetric-Key Encrypted Session Key packet
QUIET_LOG_PARAMETERS = ("log_parameter_max_length", "log_parameter_max_length_on_error")


def raw_column(table: str, column: str, pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return bytes(cursor.fetchone()[0])


def session_key_packet(raw: bytes) -> tuple[int, int, int]:
    """(key version byte, packet tag, cipher algorithm) of a stored value."""
    version, header = raw[0], raw[1]
    assert header & 0xC0 == 0xC0, "expected a new-format OpenPGP packet"
    tag = header & 0x3F
    # One-octet length, then packet version 4, then the symmetric algorithm.
    assert raw[3] == 4
    return version, tag, raw[4]


@pytest.fixture
def rekey(settings):
    """Switch pgcrypto keys for one test and restore the cached keyring afterwards."""

    def apply(key: str, version: int = 1, old: dict | None = None) -> None:
        settings.PGCRYPTO_KEY = key
        settings.PGCRYPTO_KEY_VERSION = version
        settings.PGCRYPTO_OLD_KEYS = old or {}
        crypto.keyring.cache_clear()

    yield apply
    crypto.keyring.cache_clear()


def test_it_stores_aes256_ciphertext(make_user):
    user = make_user(email="cipher@example.com", name="Ciphered Name")
    raw = raw_column("users", "email", user.pk)

    assert b"cipher@example.com" not in raw
    assert session_key_packet(raw) == (1, SKESK_PACKET, AES256)
    assert b"Ciphered" not in raw_column("users", "name", user.pk)
    assert User.objects.get(pk=user.pk).email == "cipher@example.com"


def test_it_decrypts_in_values_and_related_queries(make_user):
    user = make_user(email="values@example.com", name="Vee")
    assert list(User.objects.filter(pk=user.pk).values_list("email", "name")) == [("values@example.com", "Vee")]


def test_it_never_puts_the_key_in_statement_text(make_user, rekey):
    secret = "k3y-with-'quote'-and-%percent%-" + "x" * 20
    rekey(secret)
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        user = make_user(email="bound@example.com", name="Bound")
        assert User.objects.get(pk=user.pk).name == "Bound"
        User.objects.filter(pk=user.pk).update(name="Rebound")

    assert statements
    assert not any(secret in sql for sql in statements)
    assert User.objects.get(pk=user.pk).name == "Rebound"


@pytest.mark.django_db(transaction=True)
def test_the_key_never_shows_in_pg_stat_activity(make_user, rekey):
    secret = "activity-key-'%-" + "y" * 24
    rekey(secret)
    user = make_user(email="activity@example.com")
    seen: list[str] = []
    stop = threading.Event()
    dsn = connection.get_connection_params()
    watcher_params = {k: v for k, v in dsn.items() if k in {"host", "port", "user", "password", "dbname"} and v}

    def watch() -> None:
        with psycopg.connect(**watcher_params, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute("SELECT query FROM pg_stat_activity WHERE query ILIKE '%pgp_sym%'").fetchall()
                seen.extend(row[0] for row in rows)
                time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # Keep a decrypting statement on screen long enough for the watcher to see it.
        with connection.cursor() as cursor:
            for _ in range(3):
                sql, params = crypto.decrypt_sql("email")
                cursor.execute(f"SELECT {sql}, pg_sleep(0.2) FROM users WHERE id = %s", [*params, user.pk])  # noqa: S608
    finally:
        stop.set()
        watcher.join()

    assert any("pgp_sym_decrypt" in query for query in seen), "the watcher never saw the statement"
    assert not any(secret in query for query in seen)


def test_a_key_with_quote_and_percent_round_trips(make_user, rekey):
    rekey("it's 100% a key; DROP TABLE users; --" + "z" * 10)
    user = make_user(email="quoted@example.com", name="50% O'Brien")
    fresh = User.objects.get(pk=user.pk)
    assert (fresh.email, fresh.name) == ("quoted@example.com", "50% O'Brien")


def test_old_values_stay_readable_after_the_key_changes(make_user, rekey, settings):
    old_key = settings.PGCRYPTO_KEY
    user = make_user(email="rotating@example.com")
    rekey("a-brand-new-key-" + "n" * 24, version=2, old={1: old_key})

    assert User.objects.get(pk=user.pk).email == "rotating@example.com"
    user.name = "Written with key 2"
    user.save(update_fields=["name"])
    assert raw_column("users", "name", user.pk)[0] == 2
    assert raw_column("users", "email", user.pk)[0] == 1


def test_an_unknown_key_version_fails_loudly(make_user, rekey):
    user = make_user()
    rekey("entirely-different-key-" + "q" * 20, version=3)
    with pytest.raises(Exception, match="no pgcrypto key is configured for key version 1"):
        User.objects.get(pk=user.pk)


def test_null_values_read_as_none(make_user):
    """A NULL column (or a NULL expression) decrypts to None, not to a key-version error."""
    from django.db.models import Case, F, When

    from core.fields import EncryptedTextField

    user = make_user(name="Visible")
    rows = User.objects.filter(pk=user.pk).annotate(
        maybe=Case(When(pk=-1, then=F("name")), output_field=EncryptedTextField())
    )
    assert rows.get().maybe is None


def test_expressions_are_refused_rather_than_stored(make_user):
    """bulk_update() and F()/Value() updates would store an expression's repr as the value."""
    from django.db.models import F, Value

    user = make_user(email="kept@example.com", name="Kept")
    user.name = "Changed"
    attempts = [
        lambda: User.objects.bulk_update([user], ["name"]),
        lambda: User.objects.filter(pk=user.pk).update(name=F("email")),
        lambda: User.objects.filter(pk=user.pk).update(name=Value("Changed")),
    ]
    for attempt in attempts:
        with pytest.raises(FieldError, match="encrypted"), transaction.atomic():
            attempt()
    assert User.objects.get(pk=user.pk).name == "Kept"


def test_filtering_on_ciphertext_is_refused(db):
    with pytest.raises(FieldError, match="blind index"):
        list(User.objects.filter(email="someone@example.com"))
    assert list(User.objects.filter(email__isnull=True)) == []


def test_the_blind_index_is_keyed_and_normalized(settings):
    digest = crypto.blind_index("  Mixed@Example.COM ")
    assert digest == crypto.blind_index("mixed@example.com")
    settings.BLIND_INDEX_KEY = "another-blind-index-key-" + "b" * 10
    assert crypto.blind_index("mixed@example.com") != digest


@pytest.mark.django_db(transaction=True)
def test_the_setup_script_keeps_bound_keys_out_of_the_server_log(settings):
    """scripts/create_database.py turns parameter logging off for the database it creates.

    With log_statement or log_min_duration_statement on, PostgreSQL would otherwise print
    each statement's bound parameters, pgcrypto keys included, into the server log.
    """
    db = connection.settings_dict
    name = f"{db['NAME']}_setup_probe"
    params = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"]}
    if db["PASSWORD"]:
        params["password"] = db["PASSWORD"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{auth}@{params['host']}:{params['port']}/{name}"
    try:
        result = subprocess.run(
            [sys.executable, "scripts/create_database.py"],
            cwd=settings.BASE_DIR,
            env=os.environ | {"DATABASE_URL": url},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        with psycopg.connect(dbname=name, **params) as conn:
            values = [conn.execute(f"SHOW {parameter}").fetchone()[0] for parameter in QUIET_LOG_PARAMETERS]
        assert values == ["0", "0"]
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
