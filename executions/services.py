"""Starting executions: the one place a run is created (it spans flows and executions)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.models import FlowExecution
from flows.models import Flow, FlowVersion, graph_digest

VERSION_CACHE_SIZE = 1024
# Far below the run retention (days): see _VersionCache.
VERSION_CACHE_SECONDS = 300.0


class _VersionCache:
    """(flow id, graph digest) -> version id, per process: running the same graph again (a
    webhook, a schedule) costs no query for its version.

    An id goes in only once a run that refers to it has committed: the row exists, and that
    run keeps it from the retention cleanup, which deletes only versions no run refers to,
    for days. The time limit bounds what a row gone some other way (runs deleted by hand, a
    restored backup) can cost: runs of that graph failing at commit for a few minutes.
    """

    def __init__(self, size: int, seconds: float) -> None:
        self.size, self.seconds = size, seconds
        self._entries: OrderedDict[tuple[int, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()  # web processes run several threads

    def get(self, key: tuple[int, str]) -> int | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry[1] > self.seconds:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[int, str], version_id: int) -> None:
        with self._lock:
            self._entries[key] = (version_id, time.monotonic())
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


version_cache = _VersionCache(VERSION_CACHE_SIZE, VERSION_CACHE_SECONDS)


@transaction.atomic
def start_execution(
    *, flow: Flow, trigger_type: str, trigger_data: dict, dedup_key: str | None = None
) -> tuple[FlowExecution, bool]:
    """Create a pending run of the flow's graph as it is in `flow`, and enqueue it once the
    transaction commits. The run keeps that graph (its version) whatever edits come later.

    With a dedup key, the same key never makes a second run of the same flow: the existing
    execution is returned with created=False.
    """
    if dedup_key is not None:
        existing = FlowExecution.objects.filter(flow=flow, dedup_key=dedup_key).first()
        if existing is not None:
            return existing, False
    key = (flow.pk, graph_digest(flow.flow_data))
    version_id = version_cache.get(key)
    if version_id is None:
        version_id = FlowVersion.objects.id_for(flow.pk, flow.flow_data)
    try:
        with transaction.atomic():
            execution = FlowExecution.objects.create(
                flow=flow,
                flow_version_id=version_id,
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

    def committed() -> None:
        version_cache.put(key, version_id)  # only now: see _VersionCache
        enqueue(execution.pk)

    transaction.on_commit(committed)
    return execution, True
