"""The node kit: what every node type is made of, and the one backoff every retry uses.

A node family (`executions/nodes/*.py`, `tokens/nodes.py`, `knowledge/nodes.py`) defines
its handlers and, beside each, the `NodeSpec` that describes it, then lists the specs in a
module-level `NODE_TYPES` tuple; its app's `AppConfig.ready()` registers them with
`flows.catalog.register(*NODE_TYPES)`.

A handler is `handler(config, ctx) -> NodeResult`: `config` is the node's config with its
templates filled in, `ctx` a `NodeContext`. It raises `TransientError` for what a retry may
fix and `PermanentError` for what it cannot. Plain Python: nothing here touches Django.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# --- shared pieces of config schemas -------------------------------------------------------

TEMPLATE_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
KEYWORDS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 100},
    "maxItems": 50,
    "description": "Case-insensitive keywords; empty means every event matches.",
}
MATCH_MODE = {
    "enum": ["any", "all", "exact"],
    "default": "any",
    "description": "any: one keyword appears; all: every keyword appears; exact: the text equals a keyword.",
}


def object_schema(properties: dict, required: tuple[str, ...] = ()) -> dict:
    """A config schema: these properties, nothing else."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


# --- retries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff_seconds: float = 2.0  # the first delay; it doubles each attempt
    max_backoff_seconds: float = 300.0
    # Equal jitter spreads the retries of many runs failing together; a background job that
    # reports its next try to people ("retrying in 10 s") may keep exact delays instead.
    jitter: bool = True


def backoff(policy: RetryPolicy, attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first try).

    Exponential, capped at `max_backoff_seconds`; with jitter, half of it fixed and half
    random. Every retry in Inflow waits this long (flow steps, ingestion, cleanup tasks).
    """
    ceiling = min(policy.max_backoff_seconds, policy.backoff_seconds * 2 ** max(attempt - 1, 0))
    if not policy.jitter:
        return ceiling
    return ceiling / 2 + rand() * ceiling / 2


# --- what a handler gets, returns and raises -----------------------------------------------


class TransientError(Exception):
    """A failure worth retrying: a timeout, a 5xx, a 429 (with its Retry-After)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """A failure that retrying cannot fix: bad input, a refused request, a broken rule."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class NodeContext:
    """What a node handler may know about the run it is part of."""

    node_id: str
    node_type: str
    attempt: int
    trigger: dict[str, Any]
    nodes: dict[str, Any]
    vars: dict[str, Any]
    execution_id: int | None = None
    flow_id: int | None = None
    user_id: int | None = None
    now: datetime = field(default_factory=utcnow)
    # Seconds this step may take before the execution's run-time limit is reached.
    time_left: float = 60.0


@dataclass
class NodeResult:
    output: Any = None
    port: str = "out"
    set_vars: dict[str, Any] | None = None
    wait_until: datetime | None = None  # logic.delay: park until then
    stop: str | None = None  # logic.stop: "succeeded" or "failed"
    stop_reason: str = ""


Handler = Callable[[dict, NodeContext], NodeResult]


# --- the spec ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    """A node type: its key (fixed by DESIGN.md), how editors show it, the JSON Schema of its
    config, its output ports, and the function that runs it (triggers have none: the event
    that starts the run is their output)."""

    type: str
    name: str
    # Free text, shown and filtered on in the admin: a new category needs no migration.
    category: str
    description: str
    config_schema: dict
    ports: tuple[str, ...] = ("out",)
    trigger: bool = False
    # Whether running the node twice would be visible outside Inflow (a message sent, an
    # HTTP call made). A callable decides from the rendered config.
    side_effect: bool | Callable[[dict], bool] = False
    handler: Handler | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Checks JSON Schema cannot express; returns (field, message) pairs.
    checks: Callable[[dict], list[tuple[str, str]]] | None = None

    @property
    def needs_handler(self) -> bool:
        return not self.trigger

    def check_config(self, config: dict) -> list[tuple[str, str]]:
        return self.checks(config) if self.checks else []

    def has_side_effect(self, config: dict) -> bool:
        if callable(self.side_effect):
            return self.side_effect(config)
        return self.side_effect

    def as_row(self) -> dict:
        """The columns of its `node_types` row (staff own the row's `enabled`)."""
        return {
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "config_schema": self.config_schema,
            "ports": list(self.ports),
        }
