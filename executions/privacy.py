"""Executions' part of GDPR: cancel on a deletion request, purge, contact erasure, export.

An execution holds an end customer's data in `trigger_data` (the event: text, username,
`from_id`), in `execution_log` (step outputs) and in `state` (outputs and variables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from executions.models import FlowExecution, close_open_step_sql

REDACTED = "[erased]"
ERASING = "Cancelled: the contact is being erased."


def on_deletion_request(user) -> dict[str, int]:
    """Stop everything the account had in flight."""
    now = timezone.now()
    idle = FlowExecution.objects.filter(
        user=user, status__in=[FlowExecution.Status.PENDING, FlowExecution.Status.WAITING]
    )
    reason = "Cancelled: the account is being deleted."
    cancelled = idle.update(
        status=FlowExecution.Status.CANCELLED,
        completed_at=now,
        error=reason,
        resume_at=None,
        lease=None,
        execution_log=RawSQL(close_open_step_sql("'cancelled'", "%s"), [reason]),  # noqa: S611 (fixed SQL)
    )
    stopping = FlowExecution.objects.filter(user=user, status=FlowExecution.Status.RUNNING).update(
        cancel_requested=True
    )
    return {"executions_cancelled": cancelled + stopping}


def _delete_in_batches(where_sql: str, params: list, batch_size: int, report: Callable[[str], None]) -> int:
    """DELETE a large set in bounded batches: one statement per batch, never one per row."""
    statement = (
        "DELETE FROM flow_executions WHERE id IN "  # noqa: S608 (fixed SQL fragments)
        f"(SELECT id FROM flow_executions WHERE {where_sql} LIMIT %s)"
    )
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(statement, [*params, batch_size])
            batch = cursor.rowcount
        if not batch:
            return deleted
        deleted += batch
        report(f"flow_executions: {deleted} deleted")


def purge_user(user_id: int, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    return {"flow_executions": _delete_in_batches("user_id = %s", [user_id], batch_size, report)}


def contact_executions(provider: str, contact_id: str):
    return FlowExecution.objects.alias(contact=KeyTextTransform("from_id", "trigger_data")).filter(
        Q(trigger_data__provider=provider) | Q(trigger_data__provider__isnull=True), contact=contact_id
    )


def erase_contact(provider: str, contact_id: str, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    """Scrub one end customer from every client's runs; the runs themselves stay (status, timing)."""
    matching = contact_executions(provider, contact_id)
    # Runs still in flight would write the contact's data again: stop them first.
    matching.filter(status__in=[FlowExecution.Status.PENDING, FlowExecution.Status.WAITING]).update(
        status=FlowExecution.Status.CANCELLED,
        completed_at=timezone.now(),
        resume_at=None,
        lease=None,
        execution_log=RawSQL(close_open_step_sql("'cancelled'", "%s"), [ERASING]),  # noqa: S611 (fixed SQL)
    )
    matching.filter(status=FlowExecution.Status.RUNNING).update(cancel_requested=True)
    scrubbed = 0
    ids = list(matching.values_list("id", flat=True))
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE flow_executions SET
                    trigger_data = jsonb_build_object('erased', true, 'provider', trigger_data->'provider'),
                    state = '{}'::jsonb,
                    error = CASE WHEN error = '' THEN '' ELSE %s END,
                    execution_log = COALESCE((
                        SELECT jsonb_agg(entry || jsonb_build_object(
                            'output', NULL,
                            'error', CASE WHEN entry->'error' = 'null'::jsonb THEN NULL ELSE to_jsonb(%s::text) END))
                        FROM jsonb_array_elements(execution_log) AS entry), '[]'::jsonb)
                WHERE id = ANY(%s)
                """,
                [REDACTED, REDACTED, batch],
            )
            scrubbed += cursor.rowcount
        report(f"flow_executions: {scrubbed}/{len(ids)} scrubbed")
    return {"flow_executions": scrubbed}


def contact_ids() -> Iterator[tuple[str, str]]:
    """Every (provider, contact id) seen in trigger data, for re-applying the ledger."""
    rows = (
        FlowExecution.objects.annotate(contact=KeyTextTransform("from_id", "trigger_data"))
        .exclude(contact=None)
        .values_list("trigger_data__provider", "contact")
        .distinct()
    )
    yield from ((provider or "", contact) for provider, contact in rows.iterator())


def export_user(user) -> dict[str, Iterator[dict]]:
    def executions() -> Iterator[dict]:
        fields = [
            "id",
            "flow_id",
            "status",
            "trigger_type",
            "trigger_data",
            "execution_log",
            "state",
            "error",
            "started_at",
            "completed_at",
        ]
        yield from FlowExecution.objects.filter(user=user).order_by("id").values(*fields).iterator(chunk_size=500)

    return {"executions": executions()}
