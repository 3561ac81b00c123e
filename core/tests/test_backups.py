"""Backups with pg_dump, restore into a scratch database, and the deletion ledger."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts import gdpr
from accounts.models import User
from config.env import parse_database_url
from conftest import TEST_REDIS_URL
from core import crypto
from core.backups import _database_url, list_backups, prune_backups, take_backup
from flows.models import Flow
from tokens.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump sees committed data only


@pytest.fixture
def scratch_database(monkeypatch, settings, tmp_path):
    """A database name for restores, dropped afterwards; backups and ledger in tmp."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.GDPR_LEDGER_PATH = tmp_path / "ledger.jsonl"
    # The restore re-applies the ledger in a subprocess: it reads these from the environment.
    monkeypatch.setenv("GDPR_LEDGER_PATH", str(settings.GDPR_LEDGER_PATH))
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    name = f"{connection.settings_dict['NAME']}_restored"
    yield name
    with psycopg.connect(**_params("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _params(dbname: str) -> dict:
    db = connection.settings_dict
    params = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"], "dbname": dbname}
    return {k: v for k, v in params.items() if v}


def restored(database: str, sql: str, params: list | None = None) -> list[tuple]:
    with psycopg.connect(**_params(database)) as conn:
        return conn.execute(sql, params or []).fetchall()


def seed(make_user) -> tuple[User, User]:
    first = make_user(email="first@example.com", name="First Person")
    second = make_user(email="second@example.com", name="Second Person")
    for user in (first, second):
        Flow.objects.create(user=user, name=f"flow of {user.pk}", flow_data={"nodes": [], "edges": []})
        token = ApiToken(user=user, provider="instagram", account_id=f"1784100000{user.pk:04d}")
        token.set_token(f"IGQVJtoken-of-user-{user.pk:04d}-xxxx")
        token.save()
    return first, second


def test_backup_restore_round_trip(make_user, scratch_database, settings):
    seed(make_user)
    call_command("backup", stdout=open("/dev/null", "w"))  # noqa: SIM115
    [backup] = list_backups(settings.BACKUP_DIR)
    assert backup.checksum_path.read_text().split()[1] == backup.path.name

    call_command("restore", str(backup.path), database=scratch_database, stdout=open("/dev/null", "w"))  # noqa: SIM115

    for table in ("users", "flows", "api_tokens", "node_types"):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
            live = cursor.fetchone()[0]
        assert restored(scratch_database, f"SELECT count(*) FROM {table}")[0][0] == live, table  # noqa: S608
    decrypt, key_params = crypto.decrypt_sql("email")
    emails = restored(scratch_database, f"SELECT {decrypt} FROM users ORDER BY id", key_params)  # noqa: S608
    assert [row[0] for row in emails] == ["first@example.com", "second@example.com"]
    decrypt, key_params = crypto.decrypt_sql("access_token")
    tokens = restored(scratch_database, f"SELECT {decrypt} FROM api_tokens ORDER BY id", key_params)  # noqa: S608
    assert tokens[0][0].startswith("IGQVJtoken-of-user-")


def test_a_backup_from_before_a_purge_does_not_bring_the_user_back(make_user, scratch_database, settings):
    first, second = seed(make_user)
    gdpr.request_deletion(first)
    backup = take_backup()  # still holds the first user
    gdpr.purge_user(User.objects.get(pk=first.pk))
    assert not User.objects.filter(pk=first.pk).exists()

    call_command("restore", str(backup.path), database=scratch_database, stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert restored(scratch_database, "SELECT id FROM users ORDER BY id") == [(second.pk,)]
    assert restored(scratch_database, "SELECT count(*) FROM flows WHERE user_id = %s", [first.pk]) == [(0,)]
    assert restored(scratch_database, "SELECT count(*) FROM api_tokens WHERE user_id = %s", [first.pk]) == [(0,)]
    assert restored(scratch_database, "SELECT subject, pseudonym FROM gdpr_ledger") == [("user", first.pseudonym)]


def test_damaged_backups_and_the_live_database_are_refused(make_user, scratch_database, settings):
    seed(make_user)
    backup = take_backup()
    with pytest.raises(CommandError, match="not over the live one"):
        call_command("restore", str(backup.path), database=connection.settings_dict["NAME"])
    with backup.path.open("ab") as handle:
        handle.write(b"corruption")
    with pytest.raises(CommandError, match="does not match its checksum"):
        call_command("restore", str(backup.path), database=scratch_database)


def database_exists(name: str) -> bool:
    return bool(restored("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", [name]))


def test_a_missing_ledger_stops_the_restore(make_user, scratch_database, settings):
    seed(make_user)
    backup = take_backup()
    settings.GDPR_LEDGER_PATH.unlink()  # e.g. BACKUP_DIR copied back without it

    with pytest.raises(CommandError, match=r"deletion ledger .* is missing"):
        call_command("restore", str(backup.path), database=scratch_database)
    assert not database_exists(scratch_database)

    call_command("restore", str(backup.path), database=scratch_database, without_ledger=True, stdout=io.StringIO())
    assert restored(scratch_database, "SELECT count(*) FROM users")[0][0] == 2


def test_a_restore_the_ledger_cannot_be_applied_to_is_dropped(make_user, scratch_database, settings):
    seed(make_user)
    backup = take_backup()
    settings.GDPR_LEDGER_PATH.unlink()
    settings.GDPR_LEDGER_PATH.mkdir()  # present, but unreadable as a ledger

    with pytest.raises(CommandError, match="re-applying the deletion ledger failed"):
        call_command("restore", str(backup.path), database=scratch_database, stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert not database_exists(scratch_database)  # nobody can point DATABASE_URL at it by mistake


def test_the_restored_database_url_keeps_credentials_and_options(monkeypatch):
    for key, value in {"USER": "in flow", "PASSWORD": "p@ss/w:rd#?%", "HOST": "db.internal", "PORT": "6432"}.items():
        monkeypatch.setitem(connection.settings_dict, key, value)
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"sslmode": "require", "server_side_binding": True})

    parsed = parse_database_url(_database_url("inflow_restored"))

    assert (parsed["USER"], parsed["PASSWORD"], parsed["HOST"], parsed["PORT"]) == (
        "in flow",
        "p@ss/w:rd#?%",
        "db.internal",
        "6432",
    )
    assert parsed["NAME"] == "inflow_restored"
    assert parsed["OPTIONS"] == {"sslmode": "require"}


def test_backups_older_than_the_retention_are_pruned(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path
    settings.BACKUP_RETENTION_DAYS = 14
    now = datetime(2026, 11, 25, 2, 15, tzinfo=UTC)
    for days in (30, 15, 13, 1):
        name = f"inflow-{now - timedelta(days=days):%Y%m%dT%H%M%SZ}.dump"
        (tmp_path / name).write_bytes(b"x")
        (tmp_path / f"{name}.sha256").write_text("0  x\n")

    pruned = prune_backups(now=now)

    assert len(pruned) == 2
    assert [b.taken_at.day for b in list_backups(tmp_path)] == [12, 24]
    assert sorted(p.name for p in tmp_path.iterdir())[0].startswith("inflow-20261112")
    # The newest backup is kept even when it is past the retention.
    assert prune_backups(now=now + timedelta(days=60)) != []
    assert len(list_backups(tmp_path)) == 1
