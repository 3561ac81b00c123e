"""Restore a backup into a named database, then re-apply the GDPR deletion ledger.

The ledger lives outside the database (GDPR_LEDGER_PATH), so a backup taken before a
purge does not bring the purged user back.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.backups import BackupError, restore_backup


class Command(BaseCommand):
    help = "Restore FILE (made by `backup`) into --database NAME and re-apply the GDPR deletion ledger."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--database", required=True, help="Name of the database to create and restore into.")
        parser.add_argument("--replace", action="store_true", help="Drop the target database first if it exists.")
        parser.add_argument(
            "--without-ledger",
            action="store_true",
            help="Restore even though GDPR_LEDGER_PATH is missing (only if nobody was ever erased).",
        )

    def handle(self, *args, file: Path, database: str, replace: bool, without_ledger: bool, **options):
        if not file.exists():
            raise CommandError(f"{file} does not exist.")
        try:
            restore_backup(file, database, replace=replace, without_ledger=without_ledger, report=self.stdout.write)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"restored {file.name} into {database}"))
