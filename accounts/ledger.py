"""The deletion ledger outside the database: an append-only JSON Lines file.

A backup taken before a purge still holds the purged user. `restore` re-applies every
ledger entry to the restored database; for that the ledger must not live only inside the
database it is restoring. Entries hold no personal data (see DeletionRecord).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings


def append(subject: str, pseudonym: str, erased_at: str, counts: dict) -> None:
    path: Path = settings.GDPR_LEDGER_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"subject": subject, "pseudonym": pseudonym, "erased_at": erased_at, "counts": counts})
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # the entry must survive a crash right after the purge


def read() -> list[dict]:
    path: Path = settings.GDPR_LEDGER_PATH
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            entries.append(json.loads(line))
    return entries
