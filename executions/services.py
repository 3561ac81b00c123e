"""Starting executions: the one place a run is created (it spans flows and executions)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.models import FlowExecution
from flows.models import Flow


@transaction.atomic
def start_execution(
    *, flow: Flow, trigger_type: str, trigger_data: dict, dedup_key: str | None = None
) -> tuple[FlowExecution, bool]:
    """Create a pending run and enqueue it once the transaction commits.

    With a dedup key, the same key never makes a second run of the same flow: the existing
    execution is returned with created=False.
    """
    if dedup_key is not None:
        existing = FlowExecution.objects.filter(flow=flow, dedup_key=dedup_key).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            execution = FlowExecution.objects.create(
                flow=flow,
                user_id=flow.user_id,
                trigger_type=trigger_type,
                trigger_data=trigger_data,
                dedup_key=dedup_key,
                enqueued_at=timezone.now(),
            )
    except IntegrityError:
        # A concurrent delivery of the same event won the race.
        return FlowExecution.objects.get(flow=flow, dedup_key=dedup_key), False

    from executions.tasks import enqueue

    transaction.on_commit(lambda: enqueue(execution.pk))
    return execution, True
