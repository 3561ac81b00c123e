"""Re-encrypt every encrypted column with the current pgcrypto key.

Procedure:
  1. Set PGCRYPTO_KEY to the new key and bump PGCRYPTO_KEY_VERSION (e.g. 1 -> 2).
  2. Put the old key in PGCRYPTO_OLD_KEYS as JSON, e.g. {"1": "<old key>"}; deploy.
     Reads keep working: each value names the version of the key that sealed it.
  3. Run this command. It works in batches and can be stopped and rerun at any time.
  4. When it reports nothing left, remove the old key from PGCRYPTO_OLD_KEYS.
"""

from django.core.management.base import BaseCommand

from core.crypto import keyring
from core.rotation import encrypted_columns, rotate_all, stale_count


class Command(BaseCommand):
    help = "Re-encrypt every encrypted column from old pgcrypto keys to the current one (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument("--dry-run", action="store_true", help="Only count the values still under old keys.")

    def handle(self, *args, batch_size: int, dry_run: bool, **options):
        ring = keyring()
        self.stdout.write(f"current key version: {ring.current_version}; known versions: {sorted(ring.keys)}")
        if dry_run:
            for column in encrypted_columns():
                self.stdout.write(f"{column}: {stale_count(column)} value(s) under an old key")
            return
        totals = rotate_all(batch_size=batch_size, report=self.stdout.write)
        left = sum(stale_count(column) for column in encrypted_columns())
        self.stdout.write(self.style.SUCCESS(f"re-encrypted {sum(totals.values())} value(s); {left} left"))
