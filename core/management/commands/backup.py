"""Take a PostgreSQL backup into BACKUP_DIR and prune those older than the retention.

For cron (see docs/operations.md), e.g. nightly:
    15 2 * * *  cd /app && python manage.py backup
"""

from django.core.management.base import BaseCommand, CommandError

from core.backups import BackupError, prune_backups, take_backup


class Command(BaseCommand):
    help = "pg_dump (custom format) into BACKUP_DIR with a .sha256, then prune backups past the retention."

    def handle(self, *args, **options):
        self.stdout.write("dumping the database…")
        try:
            backup = take_backup()
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        size_mb = backup.path.stat().st_size / 1024 / 1024
        self.stdout.write(f"wrote {backup.path} ({size_mb:.1f} MB) and {backup.checksum_path.name}")
        for expired in prune_backups():
            self.stdout.write(f"pruned {expired.path.name} (taken {expired.taken_at:%Y-%m-%d})")
