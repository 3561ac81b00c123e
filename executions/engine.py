"""The flow engine: plain Python that walks a graph, runs nodes and records steps.

No ORM here. The engine takes a validated graph, a JSON-serialisable state and a
`Journal` that persists what happens; the Celery task (executions/runner.py) supplies a
journal backed by the database, unit tests supply one backed by a list.

Rules the engine keeps:
- Nodes run in breadth-first order from the trigger, each at most once per execution.
  A node's result names the port to follow (`out`, or `true`/`false` for conditions).
- Every attempt is one log entry with the fields of DESIGN.md. A failed attempt that will
  be retried says when (`retry_at`); the execution parks as `waiting` meanwhile.
- A completed step is never run again: state and the step's log entry are saved together.
- A node with side effects records its intent (a `running` entry) before the call. If a
  crash interrupts it, the resumed run does not repeat the call blindly: it fails the step
  with an explicit decision unless the node is side-effect free.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from flows import catalog
from flows.nodes import NodeContext, NodeResult, NodeSpec, PermanentError, RetryPolicy, TransientError, backoff, utcnow
from flows.templates import render

MAX_OUTPUT_BYTES = 64 * 1024


class Signal(Enum):
    CONTINUE = "continue"
    CANCEL = "cancel"  # someone asked to cancel; stop at this boundary
    LOST = "lost"  # another worker owns the execution now; stop without writing


class Journal(Protocol):
    def record(self, entry: dict, state: dict, *, replace_last: bool = False, durable: bool = False) -> Signal:
        """Persist a log entry together with the state it produced.

        `durable`: the entry is the intent or the outcome of a call with side effects, and
        must survive a crash of the database itself. Any other entry may be lost in one:
        the run then redoes side-effect-free steps, which repeats nothing anyone can see.
        """


@dataclass(frozen=True)
class Limits:
    max_steps: int = 100
    max_run_seconds: float = 300.0
    max_retry_after_seconds: float = 3600.0


@dataclass
class Outcome:
    status: str  # succeeded | failed | waiting | cancelled | lost
    error: str = ""
    resume_at: datetime | None = None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bounded_output(output: Any) -> Any:
    encoded = json.dumps(output, default=str)
    if len(encoded) <= MAX_OUTPUT_BYTES:
        return json.loads(encoded)
    return {"truncated": True, "preview": encoded[: MAX_OUTPUT_BYTES // 2]}


class Engine:
    def __init__(
        self,
        flow_data: dict,
        *,
        limits: Limits | None = None,
        disabled_types: frozenset[str] = frozenset(),
        identity: dict[str, int | None] | None = None,
        specs: Mapping[str, NodeSpec] | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nodes = {node["id"]: node for node in flow_data.get("nodes", [])}
        self.successors: dict[tuple[str, str], list[str]] = {}
        for edge in flow_data.get("edges", []):
            key = (edge["source"], edge.get("port", "out"))
            self.successors.setdefault(key, []).append(edge["target"])
        self.limits = limits or Limits()
        self.disabled_types = disabled_types
        self.identity = identity or {}
        self.specs = catalog.by_type() if specs is None else specs
        self.clock = clock
        self.monotonic = monotonic

    # --- state ---------------------------------------------------------------------------

    def initial_state(self, trigger_node_id: str, trigger_data: dict) -> dict:
        """The trigger counts as done: its output is the event that started the run."""
        state = {
            "queue": [],
            "visited": [trigger_node_id],
            "outputs": {trigger_node_id: trigger_data},
            "vars": {},
            "attempts": {},
            "in_flight": None,
            "waiting": None,
            "steps": 0,
            "run_seconds": 0.0,
        }
        self._follow(state, trigger_node_id, "out")
        return state

    def _follow(self, state: dict, node_id: str, port: str) -> None:
        for target in self.successors.get((node_id, port), []):
            if target not in state["visited"] and target not in state["queue"]:
                state["queue"].append(target)

    def _complete(self, state: dict, node_id: str, result: NodeResult) -> None:
        state["queue"].remove(node_id)
        state["visited"].append(node_id)
        state["outputs"][node_id] = result.output
        state["attempts"].pop(node_id, None)
        state["in_flight"] = None
        if result.set_vars:
            state["vars"].update(result.set_vars)
        self._follow(state, node_id, result.port)

    # --- running -------------------------------------------------------------------------

    def run(self, state: dict, journal: Journal) -> Outcome:
        """Run until the flow ends, parks, is cancelled or loses its claim."""
        started = self.monotonic()
        try:
            return self._run(state, journal, started)
        finally:
            state["run_seconds"] = round(state["run_seconds"] + self.monotonic() - started, 3)

    def _run(self, state: dict, journal: Journal, started: float) -> Outcome:
        outcome = self._resume(state, journal)
        if outcome is not None:
            return outcome
        while state["queue"]:
            node_id = state["queue"][0]
            run_seconds = state["run_seconds"] + self.monotonic() - started
            if state["steps"] >= self.limits.max_steps:
                return Outcome("failed", f"Limit reached: more than {self.limits.max_steps} steps.")
            if run_seconds >= self.limits.max_run_seconds:
                return Outcome("failed", f"Limit reached: ran for more than {self.limits.max_run_seconds:g} s.")
            outcome = self._step(state, journal, node_id, time_left=self.limits.max_run_seconds - run_seconds)
            if outcome is not None:
                return outcome
        return Outcome("succeeded")

    def _resume(self, state: dict, journal: Journal) -> Outcome | None:
        """Finish what a park or a crash left behind, before running new steps."""
        waiting = state.get("waiting")
        if waiting:
            until = _parse_iso(waiting["until"])
            if self.clock() < until:
                return Outcome("waiting", resume_at=until)
            state["waiting"] = None
            if waiting["kind"] == "delay":
                node_id = waiting["node"]
                entry = dict(waiting["entry"], status="succeeded", finished_at=_iso(self.clock()))
                entry["duration_ms"] = round((self.clock() - _parse_iso(entry["started_at"])).total_seconds() * 1000, 3)
                self._complete(state, node_id, NodeResult(output=entry["output"]))
                return self._signal_outcome(journal.record(entry, state, replace_last=True))  # a pure wait
        in_flight = state.get("in_flight")
        if in_flight:
            return self._decide_interrupted(state, journal, in_flight)
        return None

    def _decide_interrupted(self, state: dict, journal: Journal, in_flight: dict) -> Outcome:
        """A side-effecting step was interrupted mid-call (only those record an intent)."""
        node_id, attempt = in_flight["node"], in_flight["attempt"]
        state["in_flight"] = None
        now = _iso(self.clock())
        error = (
            "Interrupted: the worker stopped while this step was calling out. The call may or may not "
            "have gone through, so it is not repeated (no duplicate messages)."
        )
        node = self.nodes.get(node_id, {"id": node_id, "type": None})  # missing only in a run from before versions
        entry = self._entry(node, attempt, "failed", now, now, error=error)
        entry["decision"] = "not repeated: the step has side effects"
        signal = journal.record(entry, state, replace_last=True, durable=True)
        return self._signal_outcome(signal) or Outcome("failed", f'Step "{node_id}" failed: {error}')

    def _entry(self, node: dict, attempt: int, status: str, started: str, finished: str | None, **extra: Any) -> dict:
        duration = None
        if finished is not None:
            duration = round((_parse_iso(finished) - _parse_iso(started)).total_seconds() * 1000, 3)
        entry = {
            "node_id": node["id"],
            "type": node["type"],
            "status": status,
            "attempt": attempt,
            "started_at": started,
            "finished_at": finished,
            "duration_ms": duration,
            "output": None,
            "error": None,
        }
        entry.update(extra)
        return entry

    def _template_context(self, state: dict) -> dict:
        trigger_id = state["visited"][0] if state["visited"] else None
        return {"trigger": state["outputs"].get(trigger_id, {}), "nodes": state["outputs"], "vars": state["vars"]}

    @staticmethod
    def _signal_outcome(signal: Signal) -> Outcome | None:
        if signal is Signal.CANCEL:
            return Outcome("cancelled", "Cancelled on request.")
        if signal is Signal.LOST:
            return Outcome("lost")
        return None

    def _retry_policy(self, node: dict, spec: NodeSpec) -> RetryPolicy:
        override = node.get("retry") or {}
        return replace(
            spec.retry,
            max_attempts=override.get("max_attempts", spec.retry.max_attempts),
            backoff_seconds=override.get("backoff_seconds", spec.retry.backoff_seconds),
        )

    def _step(self, state: dict, journal: Journal, node_id: str, time_left: float) -> Outcome | None:
        node = self.nodes.get(node_id)
        if node is None:
            # Only a run from before flow versions: it resumes on the flow's current graph,
            # and someone removed the node while the run waited or was being recovered.
            return Outcome("failed", f'Node "{node_id}" is no longer in the flow: it was edited during the run.')
        spec = self.specs.get(node["type"])
        attempt = state["attempts"].get(node_id, 1)
        state["steps"] += 1
        context = self._template_context(state)
        started_at = _iso(self.clock())
        tick = self.monotonic()

        def finish(status: str, **extra: Any) -> dict:
            entry = self._entry(node, attempt, status, started_at, _iso(self.clock()), **extra)
            entry["duration_ms"] = round((self.monotonic() - tick) * 1000, 3)
            return entry

        handler, problem = self._handler_for(node, spec)
        if problem:
            journal.record(finish("failed", error=problem), state)
            return Outcome("failed", f'Step "{node_id}" failed: {problem}')
        try:
            config = render(node.get("config", {}), context)
        except RecursionError:
            config, problem = None, "The config is nested too deeply to render."
        if problem:
            journal.record(finish("failed", error=problem), state)
            return Outcome("failed", f'Step "{node_id}" failed: {problem}')

        # A call with side effects records its intent first; its outcome then replaces that
        # entry, and both are durable writes.
        replace_last = False
        if spec.has_side_effect(config):
            state["in_flight"] = {"node": node_id, "attempt": attempt}
            intent = self._entry(node, attempt, "running", started_at, None)
            outcome = self._signal_outcome(journal.record(intent, state, durable=True))
            if outcome is not None:
                state["in_flight"] = None
                if outcome.status == "cancelled":  # asked to stop as the intent was saved: no call made
                    entry = self._entry(node, attempt, "cancelled", started_at, _iso(self.clock()))
                    entry["decision"] = "not called: the run was cancelled"
                    journal.record(entry, state, replace_last=True, durable=True)
                return outcome
            replace_last = True

        node_context = NodeContext(
            node_id=node_id,
            node_type=node["type"],
            attempt=attempt,
            trigger=context["trigger"],
            nodes=context["nodes"],
            vars=context["vars"],
            time_left=max(time_left, 0.1),
            now=self.clock(),
            **self.identity,
        )
        try:
            result = handler(config, node_context)
        except TransientError as exc:
            return self._transient_failure(state, journal, node, spec, attempt, exc, finish, replace_last)
        except PermanentError as exc:
            return self._permanent_failure(state, journal, node_id, str(exc), finish, replace_last)
        except Exception as exc:  # a bug or an unexpected library error: never retried blindly
            message = f"Unexpected error: {type(exc).__name__}: {exc}"
            return self._permanent_failure(state, journal, node_id, message, finish, replace_last)

        output = _bounded_output(result.output)
        if result.wait_until is not None:
            state["in_flight"] = None
            entry = finish("waiting", output=output)
            entry["finished_at"] = entry["duration_ms"] = None
            state["waiting"] = {"node": node_id, "kind": "delay", "until": _iso(result.wait_until), "entry": entry}
            signal = journal.record(entry, state, replace_last=replace_last, durable=replace_last)
            return self._signal_outcome(signal) or Outcome("waiting", resume_at=result.wait_until)

        result.output = output
        self._complete(state, node_id, result)
        entry = finish("succeeded", output=output, port=result.port)
        if result.stop:
            state["queue"].clear()
        signal = journal.record(entry, state, replace_last=replace_last, durable=replace_last)
        outcome = self._signal_outcome(signal)
        if outcome is None and result.stop:
            reason = result.stop_reason or f'Stopped by "{node_id}".'
            return Outcome(result.stop, "" if result.stop == "succeeded" else reason)
        return outcome

    def _handler_for(self, node: dict, spec: NodeSpec | None) -> tuple[Callable | None, str | None]:
        if spec is None:
            return None, f"Unknown node type {node['type']!r}."
        if node["type"] in self.disabled_types:
            return None, f"Node type {node['type']!r} is disabled by the Inflow staff."
        handler = spec.handler
        if handler is None:
            return None, f"Node type {node['type']!r} is not available on this Inflow server."
        return handler, None

    def _permanent_failure(self, state, journal, node_id, message, finish, replace_last) -> Outcome:
        state["in_flight"] = None
        signal = journal.record(finish("failed", error=message), state, replace_last=replace_last, durable=replace_last)
        return self._signal_outcome(signal) or Outcome("failed", f'Step "{node_id}" failed: {message}')

    def _transient_failure(self, state, journal, node, spec, attempt, exc, finish, replace_last) -> Outcome:
        node_id = node["id"]
        policy = self._retry_policy(node, spec)
        state["in_flight"] = None
        if attempt >= policy.max_attempts:
            message = f"{exc} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
            return self._permanent_failure(state, journal, node_id, message, finish, replace_last)
        delay = backoff(policy, attempt)
        if exc.retry_after is not None:
            if exc.retry_after > self.limits.max_retry_after_seconds:
                message = f"{exc} (the service asked to wait {exc.retry_after:g} s, longer than allowed)"
                return self._permanent_failure(state, journal, node_id, message, finish, replace_last)
            delay = max(delay, exc.retry_after)
        resume_at = self.clock() + timedelta(seconds=delay)
        state["attempts"][node_id] = attempt + 1
        state["waiting"] = {"node": node_id, "kind": "retry", "until": _iso(resume_at)}
        entry = finish("failed", error=str(exc), retry_at=_iso(resume_at))
        signal = journal.record(entry, state, replace_last=replace_last, durable=replace_last)
        return self._signal_outcome(signal) or Outcome("waiting", resume_at=resume_at)


@dataclass
class MemoryJournal:
    """A journal that keeps everything in memory: for tests and dry runs."""

    log: list[dict] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    # (node_id, status, durable) of every write, in order.
    writes: list[tuple[str, str, bool]] = field(default_factory=list)
    cancel_after: int | None = None

    def record(self, entry: dict, state: dict, *, replace_last: bool = False, durable: bool = False) -> Signal:
        self.writes.append((entry["node_id"], entry["status"], durable))
        if replace_last:
            self.log[-1] = entry
        else:
            self.log.append(entry)
        self.snapshots.append(json.loads(json.dumps(state)))
        if self.cancel_after is not None and len(self.snapshots) >= self.cancel_after:
            return Signal.CANCEL
        return Signal.CONTINUE
