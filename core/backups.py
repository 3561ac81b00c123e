"""PostgreSQL backups: pg_dump custom format, a SHA-256 beside each file, 14-day retention.

Credentials reach pg_dump/pg_restore through the environment (PGPASSWORD), never the
command line, where `ps` would show them. So do the libpq options of DATABASE_URL
(`?sslmode=require`...), which the tools would otherwise not see.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import connection

BACKUP_NAME = re.compile(r"^inflow-(\d{8}T\d{6}Z)\.dump$")
# DATABASE_URL query options that libpq reads from the environment.
LIBPQ_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


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


def _run_tool(name: str, *arguments: str) -> subprocess.CompletedProcess:
    """Run a PostgreSQL client tool against the configured server; the caller checks it."""
    env, connection_args = _pg_env()
    return subprocess.run(  # noqa: S603 (fixed program, arguments from settings)
        [_tool(name), *connection_args, *arguments], env=env, capture_output=True, text=True, check=False
    )


def _pg_env() -> tuple[dict[str, str], list[str]]:
    db = connection.settings_dict
    env = dict(os.environ)
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    for option, variable in LIBPQ_ENV.items():
        if option in db["OPTIONS"]:
            env[variable] = str(db["OPTIONS"][option])
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
    # The ledger exists from the first backup on, so a restore can tell "nobody erased
    # yet" from "the ledger is lost" (see restore_backup).
    settings.GDPR_LEDGER_PATH.parent.mkdir(parents=True, exist_ok=True)
    settings.GDPR_LEDGER_PATH.touch(exist_ok=True)
    now = now or datetime.now(UTC)
    backup = Backup(directory / f"inflow-{now:%Y%m%dT%H%M%SZ}.dump", now)
    partial = backup.path.with_name(backup.path.name + ".partial")
    result = _run_tool(
        "pg_dump", "--format=custom", "--no-owner", "--file", str(partial), connection.settings_dict["NAME"]
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


def restore_backup(
    path: Path,
    database: str,
    *,
    replace: bool = False,
    without_ledger: bool = False,
    report: Callable[[str], None] = print,
) -> None:
    """Restore a dump into `database` (created here), then re-apply the GDPR ledger to it.

    A restored database that the ledger could not be re-applied to still holds people who
    were erased after the dump was taken; it is dropped rather than left for someone to
    point DATABASE_URL at.
    """
    verify_checksum(path)
    if database == connection.settings_dict["NAME"]:
        raise BackupError("Restore into a new database, then point DATABASE_URL at it; not over the live one.")
    ledger_path: Path = settings.GDPR_LEDGER_PATH
    if not ledger_path.exists() and not without_ledger:
        raise BackupError(
            f"The GDPR deletion ledger {ledger_path} is missing: without it, people erased since this backup "
            "would come back. Restore it from the backup storage (or set GDPR_LEDGER_PATH), or pass "
            "--without-ledger if no account or contact was ever erased."
        )
    if replace:
        _dropdb(database)
    created = _run_tool("createdb", "--maintenance-db", "postgres", "--template", "template0", database)
    if created.returncode != 0:
        raise BackupError(f"could not create database {database}: {created.stderr.strip()}")
    try:
        report(f"restoring {path.name} into {database}")
        restored = _run_tool("pg_restore", "--no-owner", "--exit-on-error", "--dbname", database, str(path))
        if restored.returncode != 0:
            raise BackupError(f"pg_restore failed: {restored.stderr.strip()}")
        if not ledger_path.exists():  # and --without-ledger said so
            report(f"WARNING: {ledger_path} is missing; the deletion ledger was not re-applied")
            return
        report("re-applying the GDPR deletion ledger to the restored database")
        reapply = subprocess.run(
            [sys.executable, "manage.py", "gdpr_purge", "--reapply-ledger"],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DATABASE_URL": _database_url(database),
                "GDPR_LEDGER_PATH": str(ledger_path),
                "REDIS_URL": settings.REDIS_URL,
            },
            capture_output=True,
            text=True,
            check=False,
        )
        if reapply.returncode != 0:
            raise BackupError(f"re-applying the deletion ledger failed: {reapply.stderr.strip()[-2000:]}")
        report(reapply.stdout.strip())
    except BaseException:
        _dropdb(database, check=False)  # the error that brought us here is the one to report
        raise


def _dropdb(database: str, *, check: bool = True) -> None:
    dropped = _run_tool("dropdb", "--maintenance-db", "postgres", "--if-exists", "--force", database)
    if check and dropped.returncode != 0:
        raise BackupError(f"could not drop database {database}: {dropped.stderr.strip()}")


def _database_url(database: str) -> str:
    """DATABASE_URL of `database` on the same server, options included (for the subprocess)."""
    db = connection.settings_dict
    auth = quote(db["USER"], safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    host = db["HOST"] or "127.0.0.1"
    # Only text options came from the URL; settings add the others (server_side_binding).
    options = urlencode({key: value for key, value in db["OPTIONS"].items() if isinstance(value, str)})
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{quote(database, safe='')}" + (
        f"?{options}" if options else ""
    )
