"""Flows' part of GDPR: pause on a deletion request, purge (with beat schedules), export."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django_celery_results.models import TaskResult

from flows.models import Flow, FlowVersion
from flows.schedules import remove_schedules, task_name


def on_deletion_request(user) -> dict[str, int]:
    active = list(Flow.objects.filter(user=user, status=Flow.Status.ACTIVE).values_list("id", flat=True))
    paused = Flow.objects.filter(id__in=active).update(status=Flow.Status.PAUSED)
    remove_schedules(active)
    return {"flows_paused": paused}


def purge_user(user_id: int, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    flow_ids = list(Flow.objects.filter(user_id=user_id).values_list("id", flat=True))
    names = [task_name(flow_id) for flow_id in flow_ids]
    schedules = remove_schedules(flow_ids)  # their crontabs too, when no other task uses them
    # Results stored for the flows' beat entries (result_extended records the entry name).
    results, _ = TaskResult.objects.filter(periodic_task_name__in=names).delete()
    # Executions are purged before flows, so the cascade has nothing left to collect.
    flows, _ = Flow.objects.filter(user_id=user_id).only("id").delete()
    report(f"flows: {flows} deleted, {schedules} beat schedule(s), {results} task result(s)")
    return {"flows": flows, "beat_schedules": schedules, "task_results": results}


def erase_contact(provider: str, contact_id: str, *, batch_size: int, report: Callable[[str], None]) -> dict[str, int]:
    return {}  # flows are written by the client; they hold no end customer's data


def export_user(user) -> dict[str, Iterator[dict]]:
    def flows() -> Iterator[dict]:
        for flow in Flow.objects.filter(user=user).order_by("id").iterator(chunk_size=200):
            yield {
                "id": flow.pk,
                "name": flow.name,
                "status": flow.status,
                "flow_data": flow.flow_data,
                "created_at": flow.created_at,
                "updated_at": flow.updated_at,
            }

    def versions() -> Iterator[dict]:
        """The graphs runs executed: earlier versions of the flows among them."""
        rows = FlowVersion.objects.filter(flow__user=user).order_by("id")
        yield from rows.values("id", "flow_id", "flow_data", "created_at").iterator(chunk_size=200)

    return {"flows": flows(), "flow_versions": versions()}
