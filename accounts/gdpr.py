"""GDPR: deletion requests, the purge, contact erasure, re-applying the ledger, export.

This is the one service that crosses every app. Each app knows its own tables and says so
in its `privacy` module (on_deletion_request, purge_user, erase_contact, export_user);
this module decides the order, the locking and the ledger.

Safety rules:
- One subject at a time under a PostgreSQL advisory lock, so two overlapping purge runs
  never work on the same user; a user already gone is skipped (idempotent).
- Large tables are deleted in batches: the number of statements grows with rows/batch,
  never with rows.
- The ledger entry is written to the file before the user row goes, so a crash can only
  leave an entry for a deletion that the next run completes, never the reverse.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import CharField, Q
from django.db.models.functions import Cast
from django.utils import timezone

from accounts import ledger
from accounts.models import ApiKey, DeletionRecord, User
from accounts.sessions import end_sessions, forget_user
from core.crypto import keyed_hash
from executions import privacy as executions_privacy
from flows import privacy as flows_privacy
from knowledge import privacy as knowledge_privacy
from tokens import events as meta_events
from tokens import privacy as tokens_privacy

# Purge order: runs first (the largest table, and they reference flows), flows last.
PARTS = (executions_privacy, tokens_privacy, knowledge_privacy, flows_privacy)
# `gdpr_purge --contact instagram:<id>` or `messenger:<id>` -> the token provider.
CONTACT_PROVIDERS = meta_events.contact_providers()
Report = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# --- Deletion requests ---------------------------------------------------------------


def request_deletion(user: User) -> dict:
    """Disable the account now: login, API keys, sessions, flows, runs in flight."""
    with transaction.atomic():
        first_request = user.disable_for_deletion()
        counts = {"api_keys_revoked": user.api_keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())}
        for part in PARTS:
            counts |= part.on_deletion_request(user)
    counts["sessions_ended"] = end_sessions(user.pk)
    purge_after = user.deletion_requested_at + timedelta(days=settings.GDPR_GRACE_DAYS)
    return {"first_request": first_request, "purge_after": purge_after, **counts}


def users_due(grace_days: int, user_id: int | None = None):
    # is_active: an account staff re-enabled by hand is not erased behind their back.
    users = User.objects.filter(deletion_requested_at__lte=timezone.now() - timedelta(days=grace_days), is_active=False)
    if user_id is not None:
        users = users.filter(pk=user_id)
    return users.only("id", "created_at", "deletion_requested_at").order_by("id")


# --- Purge ---------------------------------------------------------------------------


def lock_key(subject: str) -> int:
    """A 64-bit advisory lock key for a GDPR subject ("user:42", a contact pseudonym)."""
    digest = hashlib.sha256(f"inflow-gdpr:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _subject_lock(subject: str) -> Iterator[bool]:
    key = lock_key(subject)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s::bigint)", [key])
        locked = cursor.fetchone()[0]
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s::bigint)", [key])


def purge_user(user: User, *, batch_size: int = 10_000, report: Report = _quiet) -> DeletionRecord | None:
    """Remove everything of one account. None when another run holds it or it is gone."""
    user_id, pseudonym = user.pk, user.pseudonym
    with _subject_lock(f"user:{user_id}") as locked:
        if not locked:
            report(f"user {user_id}: another purge run is on it; skipped")
            return None
        if not User.objects.filter(pk=user_id).exists():
            return None
        # First, while the rows it names still exist to be matched.
        counts: dict[str, int] = {"admin_log": _delete_admin_log(user_id)}
        for part in PARTS:
            counts |= part.purge_user(user_id, batch_size=batch_size, report=report)
        erased_at = timezone.now()
        ledger.append(DeletionRecord.Subject.USER, pseudonym, erased_at.isoformat(), counts)
        with transaction.atomic():
            counts["api_keys"] = ApiKey.objects.filter(user_id=user_id).delete()[0]
            counts["users"] = User.objects.filter(pk=user_id).delete()[0]
            record, _ = DeletionRecord.objects.update_or_create(
                subject=DeletionRecord.Subject.USER,
                pseudonym=pseudonym,
                defaults={"erased_at": erased_at, "counts": counts},
            )
        counts["redis_keys"] = forget_user(user_id)
    report(f"user {user_id}: purged {counts}")
    return record


def _delete_admin_log(user_id: int) -> int:
    """Admin history about the account and everything it owns, and made by it (staff).

    A LogEntry keeps `object_repr`, the object's str() when staff changed it: a document
    title, a connected account's id, an API key's prefix. The owned models are found from
    the foreign keys to users, so a new model is covered without a list to maintain. One
    DELETE, whatever the number of rows.
    """
    about = Q(content_type=ContentType.objects.get_for_model(User), object_id=str(user_id))
    for relation in User._meta.get_fields(include_hidden=True):
        model = relation.related_model
        if not relation.one_to_many or model is LogEntry or model._meta.auto_created:
            continue
        owned = model._base_manager.filter(**{relation.field.name: user_id})
        ids = owned.annotate(pk_text=Cast("pk", CharField())).values("pk_text")
        about |= Q(content_type=ContentType.objects.get_for_model(model), object_id__in=ids)
    deleted, _ = LogEntry.objects.filter(about | Q(user_id=user_id)).delete()
    return deleted


def after_purge(report: Report = _quiet) -> None:
    """ "Retrain the KB": rebuild what the deletions touched (see knowledge.privacy)."""
    knowledge_privacy.after_purge(report)
    started = time.monotonic()
    with connection.cursor() as cursor:
        # Dead tuples of deleted runs still hold their data until vacuumed.
        cursor.execute("VACUUM (ANALYZE) flow_executions")
    report(f"vacuumed flow_executions ({time.monotonic() - started:.1f} s)")


# --- Contacts (end customers) --------------------------------------------------------


def parse_contact(spec: str) -> tuple[str, str]:
    """'instagram:<id>' or 'messenger:<id>' -> (token provider, id)."""
    kind, _, contact_id = spec.partition(":")
    if kind not in CONTACT_PROVIDERS or not contact_id.isdigit():
        kinds = " or ".join(f"{kind}:<numeric id>" for kind in CONTACT_PROVIDERS)
        raise ValueError(f"A contact is {kinds}.")
    return CONTACT_PROVIDERS[kind], contact_id


def contact_pseudonym(provider: str, contact_id: str) -> str:
    return keyed_hash(f"contact:{provider}:{contact_id}")


def erase_contact(provider: str, contact_id: str, *, batch_size: int = 1000, report: Report = _quiet):
    pseudonym = contact_pseudonym(provider, contact_id)
    with _subject_lock(f"contact:{pseudonym}") as locked:
        if not locked:
            report("another run is erasing this contact; skipped")
            return None
        counts: dict[str, int] = {}
        for part in PARTS:
            counts |= part.erase_contact(provider, contact_id, batch_size=batch_size, report=report)
        erased_at = timezone.now()
        ledger.append(DeletionRecord.Subject.CONTACT, pseudonym, erased_at.isoformat(), counts)
        record, _ = DeletionRecord.objects.update_or_create(
            subject=DeletionRecord.Subject.CONTACT,
            pseudonym=pseudonym,
            defaults={"erased_at": erased_at, "counts": counts},
        )
    report(f"contact erased: {counts}")
    return record


# --- After a restore -----------------------------------------------------------------


def reapply_ledger(*, batch_size: int = 10_000, report: Report = _quiet) -> dict[str, int]:
    """Erase again, in this database, every subject of the ledger file (after a restore)."""
    entries = ledger.read()
    DeletionRecord.objects.bulk_create(
        [
            DeletionRecord(subject=e["subject"], pseudonym=e["pseudonym"], erased_at=e["erased_at"], counts=e["counts"])
            for e in entries
        ],
        ignore_conflicts=True,
    )
    users = {e["pseudonym"] for e in entries if e["subject"] == DeletionRecord.Subject.USER}
    contacts = {e["pseudonym"] for e in entries if e["subject"] == DeletionRecord.Subject.CONTACT}
    purged = erased = 0
    for user in User.objects.only("id", "created_at").order_by("id").iterator():
        if user.pseudonym in users and purge_user(user, batch_size=batch_size, report=report):
            purged += 1
    seen = set(executions_privacy.contact_ids()) | set(tokens_privacy.contact_ids())
    # Trigger data without a provider (a manual run's) may be either's: erase_contact matches it.
    candidates = {
        (candidate, contact_id)
        for provider, contact_id in seen
        for candidate in ([provider] if provider else CONTACT_PROVIDERS.values())
    }
    for provider, contact_id in sorted(candidates):
        if contact_pseudonym(provider, contact_id) in contacts:
            erase_contact(provider, contact_id, report=report)
            erased += 1
    if purged:
        after_purge(report)
    return {"ledger_entries": len(entries), "users_purged": purged, "contacts_erased": erased}


# --- Export --------------------------------------------------------------------------


def export_user(user: User) -> Iterator[str]:
    """The account's data as one JSON document, streamed section by section."""
    encoder = DjangoJSONEncoder()
    yield "{"
    yield '"exported_at": ' + encoder.encode(timezone.now())
    profile = {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "created_at": user.created_at,
        "last_login": user.last_login,
        "deletion_requested_at": user.deletion_requested_at,
    }
    yield ', "user": ' + encoder.encode(profile)
    keys = user.api_keys.values("name", "prefix", "created_at", "last_used_at", "revoked_at")
    yield ', "api_keys": ' + encoder.encode(list(keys))
    for part in PARTS:
        for section, rows in part.export_user(user).items():
            yield f", {json.dumps(section)}: ["
            for index, row in enumerate(rows):
                yield ("," if index else "") + encoder.encode(row)
            yield "]"
    yield "}"
