"""The node catalog: the registry of every node type this Inflow server runs.

Node families define their specs beside their handlers (see flows/nodes.py) and register
them from their app's `ready()`, so this module imports none of them: flows knows what a
node type is, not which ones exist. `manage.py sync_node_types` copies the registry into
the `node_types` table, where staff can switch a type off; the `inflow.E010` system check
(flows/checks.py) refuses to start when a registered type that needs a handler has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from flows.nodes import NodeSpec

_specs: dict[str, NodeSpec] = {}


def register(*specs: NodeSpec) -> None:
    """Add node types. Registering the same spec again is a no-op; another spec under a type
    already taken is a programming error (two modules claiming one key)."""
    for spec in specs:
        known = _specs.get(spec.type)
        if known is not None and known is not spec:
            raise ValueError(f"node type {spec.type!r} is registered twice")
        _specs[spec.type] = spec


def get_spec(node_type: str) -> NodeSpec | None:
    return _specs.get(node_type)


def all_specs() -> tuple[NodeSpec, ...]:
    """Every registered type, in registration order (INSTALLED_APPS, then each NODE_TYPES)."""
    return tuple(_specs.values())


def by_type() -> Mapping[str, NodeSpec]:
    """The registry as a read-only mapping of type key to spec (what the engine looks up)."""
    return MappingProxyType(_specs)


def trigger_types() -> frozenset[str]:
    return frozenset(spec.type for spec in _specs.values() if spec.trigger)
