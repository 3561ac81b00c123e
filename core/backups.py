"""PostgreSQL backups: pg_dump custom format, a SHA-256 beside each file, 14-day retention.

Credentials reach pg_dump/pg_restore through the environment (PGPASSWORD), never the
command line, where `ps` would show them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection

BACKUP_NAME = re.compile(r"^inflow-(\d{8}T\d{6}Z)\.dump$")


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class Backup:
    path: Path
    taken_at: datetime

    @property
    def checksum_path(self) -> Path:
        return self.path.with_name(self.path.name + ".sha256")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed; install the PostgreSQL client tools (postgresql-client).")
    return path


def _pg_env() -> tuple[dict[str, str], list[str]]:
    db = connection.settings_dict
    env = dict(os.environ)
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    args = ["--host", db["HOST"] or "127.0.0.1", "--port", str(db["PORT"] or 5432)]
    if db["USER"]:
        args += ["--username", db["USER"]]
    return env, args


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def list_backups(directory: Path) -> list[Backup]:
    backups = []
    for path in directory.glob("inflow-*.dump"):
        match = BACKUP_NAME.match(path.name)
        if match:
            taken_at = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            backups.append(Backup(path, taken_at))
    return sorted(backups, key=lambda backup: backup.taken_at)


def take_backup(directory: Path | None = None, now: datetime | None = None) -> Backup:
    directory = directory or settings.BACKUP_DIR
    directory.mkdir(parents=True, exist_ok=True)
    now = now or datetime.now(UTC)
    backup = Backup(directory / f"inflow-{now:%Y%m%dT%H%M%SZ}.dump", now)
    partial = backup.path.with_name(backup.path.name + ".partial")
    env, args = _pg_env()
    result = subprocess.run(  # noqa: S603 (fixed program, arguments from settings)
        [
            _tool("pg_dump"),
            *args,
            "--format=custom",
            "--no-owner",
            "--file",
            str(partial),
            connection.settings_dict["NAME"],
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    backup.checksum_path.write_text(f"{sha256_of(partial)}  {backup.path.name}\n")
    partial.rename(backup.path)  # only complete dumps ever carry the final name
    return backup


def prune_backups(directory: Path | None = None, now: datetime | None = None) -> list[Backup]:
    """Delete backups older than BACKUP_RETENTION_DAYS; always keep the newest one."""
    directory = directory or settings.BACKUP_DIR
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.BACKUP_RETENTION_DAYS)
    backups = list_backups(directory)
    expired = [backup for backup in backups[:-1] if backup.taken_at < cutoff]
    for backup in expired:
        backup.path.unlink(missing_ok=True)
        backup.checksum_path.unlink(missing_ok=True)
    return expired


def verify_checksum(path: Path) -> None:
    checksum_path = path.with_name(path.name + ".sha256")
    if not checksum_path.exists():
        raise BackupError(f"{checksum_path.name} is missing; refusing to restore an unverified file.")
    expected = checksum_path.read_text().split()[0]
    if sha256_of(path) != expected:
        raise BackupError(f"{path.name} does not match its checksum; the file is damaged.")


def restore_backup(path: Path, database: str, *, replace: bool = False, report: Callable[[str], None] = print) -> None:
    """Restore a dump into `database` (created here), then re-apply the GDPR ledger to it."""
    verify_checksum(path)
    if database == connection.settings_dict["NAME"]:
        raise BackupError("Restore into a new database, then point DATABASE_URL at it; not over the live one.")
    env, args = _pg_env()
    maintenance = ["--maintenance-db", "postgres"]
    if replace:
        dropdb = [_tool("dropdb"), *args, *maintenance, "--if-exists", "--force", database]
        subprocess.run(dropdb, env=env, check=True)  # noqa: S603
    created = subprocess.run(  # noqa: S603
        [_tool("createdb"), *args, *maintenance, "--template", "template0", database],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise BackupError(f"could not create database {database}: {created.stderr.strip()}")
    report(f"restoring {path.name} into {database}")
    restored = subprocess.run(  # noqa: S603
        [_tool("pg_restore"), *args, "--no-owner", "--exit-on-error", "--dbname", database, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if restored.returncode != 0:
        raise BackupError(f"pg_restore failed: {restored.stderr.strip()}")
    report("re-applying the GDPR deletion ledger to the restored database")
    reapply = subprocess.run(  # noqa: S603
        [_python(), "manage.py", "gdpr_purge", "--reapply-ledger"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": _database_url(database)},
        capture_output=True,
        text=True,
        check=False,
    )
    if reapply.returncode != 0:
        raise BackupError(f"re-applying the deletion ledger failed: {reapply.stderr.strip()[-2000:]}")
    report(reapply.stdout.strip())


def _python() -> str:
    import sys

    return sys.executable


def _database_url(database: str) -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database}"
