"""The deletion ledger outside the database: an append-only JSON Lines file.

A backup taken before a purge still holds the purged user. `restore` re-applies every
ledger entry to the restored database; for that the ledger must not live only inside the
database it is restoring. Entries hold no personal data (see DeletionRecord).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


def append(subject: str, pseudonym: str, erased_at: str, counts: dict) -> None:
    path: Path = settings.GDPR_LEDGER_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"subject": subject, "pseudonym": pseudonym, "erased_at": erased_at, "counts": counts})
    with path.open("a+b") as handle:
        # A crash mid-write leaves a line without its newline; written after it, this entry
        # would be lost inside that damaged line. (Writes go to the end whatever the seek.)
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                line = "\n" + line
        handle.write(line.encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())  # the entry must survive a crash right after the purge


def read() -> list[dict]:
    """Every entry. A damaged line can only be a write cut short by a crash, which came
    before the erasure it announced, so that erasure was redone and logged again: skip it."""
    path: Path = settings.GDPR_LEDGER_PATH
    if not path.exists():
        return []
    entries, damaged = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            damaged += 1
    if damaged:
        logger.warning("GDPR ledger %s: skipped %d damaged line(s)", path, damaged)
    return entries
