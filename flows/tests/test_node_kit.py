"""The node kit and the catalog: families register their specs, start-up checks them."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from flows import catalog
from flows.checks import check_node_families_registered, check_node_handlers
from flows.models import NodeType
from flows.nodes import NodeResult, NodeSpec, RetryPolicy, backoff, object_schema
from flows.sync import sync_node_types


def spec(node_type: str = "test.node", **fields) -> NodeSpec:
    defaults = {"name": "Test", "category": "logic", "description": "", "config_schema": object_schema({})}
    return NodeSpec(type=node_type, **(defaults | fields))


def test_every_family_registers_its_specs_and_every_handler_is_callable():
    call_command("check")  # raises SystemCheckError on any error
    assert check_node_handlers(None) == []
    assert check_node_families_registered(None) == []
    types = {s.type for s in catalog.all_specs()}
    assert {"trigger.manual", "http.request", "logic.condition", "instagram.comment", "ai.reply"} <= types
    assert catalog.trigger_types() == {s.type for s in catalog.all_specs() if s.trigger}
    assert catalog.get_spec("logic.condition").handler.__module__ == "executions.nodes.logic"


def test_a_node_type_without_its_handler_stops_the_start(monkeypatch):
    monkeypatch.setitem(catalog._specs, "test.broken", spec("test.broken"))
    errors = check_node_handlers(None)
    assert [(e.id, e.obj) for e in errors] == [("inflow.E010", "test.broken")]
    with pytest.raises(SystemCheckError, match=r"Node type 'test\.broken' has no handler"):
        call_command("check")
    # A trigger has none by nature.
    monkeypatch.setitem(catalog._specs, "test.broken", spec("test.broken", trigger=True))
    assert check_node_handlers(None) == []


def test_a_family_that_forgot_to_register_stops_the_start(monkeypatch):
    monkeypatch.delitem(catalog._specs, "logic.delay")
    errors = check_node_families_registered(None)
    assert [(e.id, e.obj) for e in errors] == [("inflow.E011", "logic.delay")]
    assert "ExecutionsConfig.ready()" in errors[0].hint


def test_two_specs_cannot_claim_one_type(monkeypatch):
    monkeypatch.setattr(catalog, "_specs", dict(catalog._specs))
    existing = catalog.get_spec("logic.set")
    catalog.register(existing)  # the same spec again: no-op
    with pytest.raises(ValueError, match=r"'logic\.set' is registered twice"):
        catalog.register(spec("logic.set", handler=existing.handler))


@pytest.mark.django_db
def test_a_new_category_needs_no_migration(monkeypatch, api):
    handler = lambda config, ctx: NodeResult()  # noqa: E731
    monkeypatch.setitem(catalog._specs, "test.tagger", spec("test.tagger", category="conversation", handler=handler))
    sync_node_types()
    assert NodeType.objects.get(type="test.tagger").category == "conversation"
    rows = {row["type"]: row for row in api.get("/api/v1/node-types/").json()}
    assert rows["test.tagger"]["category"] == "conversation"


def test_one_backoff_with_or_without_jitter():
    jittered = RetryPolicy(max_attempts=5, backoff_seconds=10, max_backoff_seconds=300)
    assert [backoff(jittered, n, rand=lambda: 0.5) for n in (1, 2, 3)] == [7.5, 15, 30]
    exact = RetryPolicy(max_attempts=5, backoff_seconds=10, max_backoff_seconds=300, jitter=False)
    assert [backoff(exact, n, rand=lambda: 0.0) for n in (1, 2, 3, 6, 7)] == [10, 20, 40, 300, 300]
