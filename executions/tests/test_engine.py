"""The engine as plain Python: no database, no worker, an in-memory journal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from executions.engine import Engine, Limits, MemoryJournal
from flows import catalog
from flows.nodes import NodeResult, NodeSpec, PermanentError, RetryPolicy, TransientError, backoff

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def graph(nodes: list[tuple[str, str, dict]], edges: list[tuple]) -> dict:
    return {
        "nodes": [{"id": i, "type": t, "config": c} for i, t, c in nodes],
        "edges": [{"source": e[0], "target": e[1], **({"port": e[2]} if len(e) > 2 else {})} for e in edges],
    }


def make_engine(flow_data: dict, clock: FakeClock | None = None, specs: dict | None = None, **kwargs) -> Engine:
    clock = clock or FakeClock()
    merged = dict(catalog.by_type()) | (specs or {})
    return Engine(flow_data, clock=clock, monotonic=clock.monotonic, specs=merged, **kwargs)


def start(engine: Engine, trigger: dict | None = None, trigger_id: str = "t") -> dict:
    return engine.initial_state(trigger_id, trigger or {})


def ran(journal: MemoryJournal) -> list[tuple[str, str]]:
    return [(entry["node_id"], entry["status"]) for entry in journal.log]


CONDITION_FLOW = graph(
    [
        ("t", "trigger.manual", {}),
        ("c", "logic.condition", {"left": "{{ trigger.text }}", "op": "contains", "right": "vip"}),
        ("yes", "logic.set", {"values": {"tier": "vip", "who": "{{ trigger.username }}"}}),
        ("no", "logic.set", {"values": {"tier": "regular"}}),
        ("after", "logic.set", {"values": {"echo": "{{ vars.tier }} via {{ nodes.c.result }}"}}),
    ],
    [("t", "c"), ("c", "yes", "true"), ("c", "no", "false"), ("yes", "after")],
)


def test_a_condition_follows_one_branch_and_skips_the_other():
    engine = make_engine(CONDITION_FLOW)
    state = start(engine, {"text": "I am a VIP customer", "username": "ana"})
    journal = MemoryJournal()

    outcome = engine.run(state, journal)

    assert outcome.status == "succeeded"
    assert ran(journal) == [("c", "succeeded"), ("yes", "succeeded"), ("after", "succeeded")]
    assert state["vars"] == {"tier": "vip", "who": "ana", "echo": "vip via true"}
    assert journal.log[0]["port"] == "true"
    assert "no" not in state["visited"]


def test_log_entries_carry_the_design_fields():
    engine = make_engine(CONDITION_FLOW)
    journal = MemoryJournal()
    engine.run(start(engine, {"text": "hello"}), journal)
    fields = {"node_id", "type", "status", "attempt", "started_at", "finished_at", "duration_ms", "output", "error"}
    for entry in journal.log:
        assert fields <= set(entry)
    assert ran(journal) == [("c", "succeeded"), ("no", "succeeded")]
    assert journal.log[0]["output"]["result"] is False


def test_templates_never_evaluate_code():
    flow = graph(
        [("t", "trigger.manual", {}), ("s", "logic.set", {"values": {"v": "{{ trigger.payload }}"}})], [("t", "s")]
    )
    engine = make_engine(flow)
    state = start(engine, {"payload": "{{ vars.secret }} __import__('os').system('true')"})
    engine.run(state, MemoryJournal())
    assert state["vars"]["v"] == "{{ vars.secret }} __import__('os').system('true')"


def test_a_delay_parks_then_resumes_at_the_delay_node():
    clock = FakeClock()
    flow = graph(
        [
            ("t", "trigger.manual", {}),
            ("before", "logic.set", {"values": {"a": 1}}),
            ("wait", "logic.delay", {"seconds": 60}),
            ("after", "logic.set", {"values": {"b": 2}}),
        ],
        [("t", "before"), ("before", "wait"), ("wait", "after")],
    )
    engine = make_engine(flow, clock)
    state, journal = start(engine), MemoryJournal()

    first = engine.run(state, journal)
    assert first.status == "waiting"
    assert ran(journal) == [("before", "succeeded"), ("wait", "waiting")]

    clock.advance(30)  # too early: nothing runs
    assert make_engine(flow, clock).run(state, journal).status == "waiting"

    clock.advance(31)
    second = make_engine(flow, clock).run(state, journal)
    assert second.status == "succeeded"
    assert ran(journal) == [("before", "succeeded"), ("wait", "succeeded"), ("after", "succeeded")]
    assert journal.log[1]["duration_ms"] == pytest.approx(61_000, abs=1)


def flaky_spec(failures: list[Exception], calls: list[int], side_effect: bool = True) -> NodeSpec:
    def handler(config, ctx):
        calls.append(ctx.attempt)
        if failures:
            raise failures.pop(0)
        return NodeResult(output={"ok": True, "attempt": ctx.attempt})

    return NodeSpec(
        type="test.flaky",
        name="Flaky",
        category="action",
        description="",
        config_schema={},
        side_effect=side_effect,
        handler=handler,
        retry=RetryPolicy(max_attempts=3, backoff_seconds=1.0),
    )


def test_transient_failures_retry_with_backoff_and_every_attempt_is_logged():
    clock, calls = FakeClock(), []
    spec = flaky_spec([TransientError("HTTP 503"), TransientError("HTTP 503")], calls)
    flow = graph([("t", "trigger.manual", {}), ("f", "test.flaky", {})], [("t", "f")])
    state, journal = start(make_engine(flow, clock, {"test.flaky": spec})), MemoryJournal()

    for _ in range(3):
        outcome = make_engine(flow, clock, {"test.flaky": spec}).run(state, journal)
        if outcome.status != "waiting":
            break
        assert outcome.resume_at > clock.now
        clock.now = outcome.resume_at

    assert outcome.status == "succeeded"
    assert calls == [1, 2, 3]
    assert [(e["attempt"], e["status"]) for e in journal.log] == [(1, "failed"), (2, "failed"), (3, "succeeded")]
    assert journal.log[0]["error"] == "HTTP 503"
    assert journal.log[0]["retry_at"]


def test_retries_give_up_after_max_attempts():
    clock, calls = FakeClock(), []
    spec = flaky_spec([TransientError("timeout")] * 5, calls)
    flow = graph([("t", "trigger.manual", {}), ("f", "test.flaky", {})], [("t", "f")])
    state, journal = start(make_engine(flow, clock, {"test.flaky": spec})), MemoryJournal()
    outcome = None
    for _ in range(5):
        outcome = make_engine(flow, clock, {"test.flaky": spec}).run(state, journal)
        if outcome.status != "waiting":
            break
        clock.now = outcome.resume_at
    assert outcome.status == "failed"
    assert "gave up after 3 attempts" in outcome.error
    assert calls == [1, 2, 3]


def test_retry_after_is_honoured():
    clock, calls = FakeClock(), []
    spec = flaky_spec([TransientError("HTTP 429", retry_after=90)], calls)
    flow = graph([("t", "trigger.manual", {}), ("f", "test.flaky", {})], [("t", "f")])
    engine = make_engine(flow, clock, {"test.flaky": spec})
    outcome = engine.run(start(engine), MemoryJournal())
    assert outcome.status == "waiting"
    assert outcome.resume_at >= clock.now + timedelta(seconds=90)


def test_permanent_and_unexpected_errors_are_not_retried():
    for error in (PermanentError("HTTP 400: bad request"), ValueError("boom")):
        calls: list[int] = []
        spec = flaky_spec([error], calls)
        flow = graph([("t", "trigger.manual", {}), ("f", "test.flaky", {})], [("t", "f")])
        engine = make_engine(flow, specs={"test.flaky": spec})
        journal = MemoryJournal()
        outcome = engine.run(start(engine), journal)
        assert outcome.status == "failed"
        assert calls == [1]
        assert ran(journal) == [("f", "failed")]
    assert "ValueError: boom" in outcome.error


def test_backoff_grows_exponentially_with_jitter():
    policy = RetryPolicy(max_attempts=10, backoff_seconds=2, max_backoff_seconds=30)
    assert [backoff(policy, n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 30, 30]
    assert [backoff(policy, n, rand=lambda: 0.0) for n in (1, 2, 3)] == [1, 2, 4]


def test_side_effects_record_intent_before_the_call():
    calls: list[int] = []
    spec = flaky_spec([], calls)
    flow = graph([("t", "trigger.manual", {}), ("f", "test.flaky", {})], [("t", "f")])
    engine = make_engine(flow, specs={"test.flaky": spec})
    journal = MemoryJournal()
    engine.run(start(engine), journal)
    intent_state = journal.snapshots[0]
    assert intent_state["in_flight"] == {"node": "f", "attempt": 1}
    assert ran(journal) == [("f", "succeeded")]  # the intent entry was replaced, not duplicated
    assert journal.snapshots[-1]["in_flight"] is None


def test_only_writes_about_calls_with_side_effects_are_durable():
    calls: list[int] = []
    flow = graph(
        [
            ("t", "trigger.manual", {}),
            ("before", "logic.set", {"values": {"a": 1}}),
            ("call", "test.flaky", {}),
            ("after", "logic.set", {"values": {"b": 2}}),
        ],
        [("t", "before"), ("before", "call"), ("call", "after")],
    )
    engine = make_engine(flow, specs={"test.flaky": flaky_spec([], calls)})
    journal = MemoryJournal()
    engine.run(start(engine), journal)
    assert journal.writes == [
        ("before", "succeeded", False),  # lost with a crashed database: redone, nothing repeats
        ("call", "running", True),  # the intent, flushed (with everything before it) before the call
        ("call", "succeeded", True),
        ("after", "succeeded", False),
    ]


def test_an_interrupted_side_effect_is_not_repeated():
    calls: list[int] = []
    spec = flaky_spec([], calls)
    flow = graph([("t", "trigger.manual", {}), ("f", "test.flaky", {})], [("t", "f")])
    engine = make_engine(flow, specs={"test.flaky": spec})
    state = start(engine)
    state["in_flight"] = {"node": "f", "attempt": 1}  # as saved just before a crash
    journal = MemoryJournal(log=[{"node_id": "f", "status": "running"}])

    outcome = engine.run(state, journal)

    assert outcome.status == "failed"
    assert calls == []
    assert journal.log[-1]["status"] == "failed"
    assert journal.log[-1]["decision"].startswith("not repeated")
    assert len(journal.log) == 1


def test_a_cancel_read_back_with_the_intent_closes_the_step_uncalled():
    calls: list[int] = []
    flow = graph([("t", "trigger.manual", {}), ("f", "test.flaky", {})], [("t", "f")])
    engine = make_engine(flow, specs={"test.flaky": flaky_spec([], calls)})
    journal = MemoryJournal(cancel_after=1)  # the write of the intent returns the cancel

    outcome = engine.run(start(engine), journal)

    assert outcome.status == "cancelled"
    assert calls == []
    assert ran(journal) == [("f", "cancelled")]
    assert journal.log[0]["finished_at"] is not None
    assert journal.log[0]["decision"] == "not called: the run was cancelled"


def test_cancel_stops_at_the_next_step_boundary():
    engine = make_engine(CONDITION_FLOW)
    journal = MemoryJournal(cancel_after=1)
    outcome = engine.run(start(engine, {"text": "vip"}), journal)
    assert outcome.status == "cancelled"
    assert ran(journal) == [("c", "succeeded")]


def test_limits_on_steps_and_run_time():
    engine = make_engine(CONDITION_FLOW, limits=Limits(max_steps=1))
    outcome = engine.run(start(engine, {"text": "vip"}), MemoryJournal())
    assert outcome.status == "failed"
    assert "more than 1 steps" in outcome.error

    clock = FakeClock()
    slow = NodeSpec(
        type="test.slow",
        name="Slow",
        category="logic",
        description="",
        config_schema={},
        handler=lambda config, ctx: clock.advance(4) or NodeResult(),
    )
    flow = graph(
        [("t", "trigger.manual", {}), ("a", "test.slow", {}), ("b", "test.slow", {})], [("t", "a"), ("a", "b")]
    )
    engine = make_engine(flow, clock, {"test.slow": slow}, limits=Limits(max_run_seconds=3))
    outcome = engine.run(start(engine), MemoryJournal())
    assert outcome.status == "failed"
    assert "ran for more than 3 s" in outcome.error


def test_stop_node_ends_the_run():
    flow = graph(
        [
            ("t", "trigger.manual", {}),
            ("s", "logic.stop", {"outcome": "failed", "reason": "Not for us"}),
        ],
        [("t", "s")],
    )
    engine = make_engine(flow)
    outcome = engine.run(start(engine), MemoryJournal())
    assert (outcome.status, outcome.error) == ("failed", "Not for us")


def test_disabled_and_unavailable_node_types_fail_clearly():
    flow = graph([("t", "trigger.manual", {}), ("s", "logic.set", {"values": {}})], [("t", "s")])
    engine = make_engine(flow, disabled_types=frozenset({"logic.set"}))
    outcome = engine.run(start(engine), MemoryJournal())
    assert "disabled" in outcome.error

    missing = NodeSpec(type="test.missing", name="Missing", category="action", description="", config_schema={})
    flow = graph([("t", "trigger.manual", {}), ("m", "test.missing", {})], [("t", "m")])
    engine = make_engine(flow, specs={"test.missing": missing})
    outcome = engine.run(start(engine), MemoryJournal())
    assert "is not available on this Inflow server" in outcome.error


@pytest.mark.parametrize(
    ("left", "op", "right", "expected"),
    [
        ("Hello", "equals", "hello", True),
        ("10", "equals", 10, True),
        ("a", "not_equals", "b", True),
        ("What is the PRICE?", "contains", "price", True),
        (["a", "b"], "contains", "B", True),
        ("hello", "starts_with", "he", True),
        ("hello", "ends_with", "lo", True),
        ("11", "gt", 9, True),
        (3, "lt", "2", False),
        (None, "exists", None, False),
        ("x", "exists", None, True),
        ("order #123", "regex", r"#\d+", True),
    ],
)
def test_condition_operators(left, op, right, expected):
    from executions.nodes.logic import evaluate

    assert evaluate(left, op, right) is expected


def test_catastrophic_regexes_fail_the_step_instead_of_hanging():
    from executions.nodes.logic import evaluate

    with pytest.raises(PermanentError, match="catastrophic"):
        evaluate("a" * 60 + "b", "regex", r"(a|aa)+$")
    with pytest.raises(PermanentError, match="compares numbers"):
        evaluate("abc", "gt", 1)


def test_regexes_that_blow_up_when_compiled_are_refused_before_compiling():
    """A pattern can come from a template (a customer's message): it is checked at run time too."""
    from executions.nodes.logic import evaluate

    for pattern in ("(?:a{1000}){1000}", "(?:(?:a{1000})+){1000}", r"(?:\p{L}{100}){100}"):
        with pytest.raises(PermanentError, match="repeat counts are too large"):
            evaluate("a", "regex", pattern)
    # Ranges and open repeats are not expanded, so ordinary patterns stay allowed.
    assert evaluate("10.0.0.255", "regex", r"^(?:\d{1,3}\.){3}\d{1,3}$")
    assert evaluate("x" * 1500, "regex", r"^.{0,1000}x.{0,1000}$")
