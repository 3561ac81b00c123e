"""Flow graph validation: plain Python over the catalog, no database.

Two levels of strictness. A *draft* may be incomplete (no trigger yet, a node not wired up,
a required setting not filled in) but never wrong (an unknown type, an edge to nowhere, a
port the node does not have, a cycle, a value of the wrong type). An *active* flow must be
complete and use only enabled node types.

Every message names the node id and the field, e.g.
    node "c" (logic.condition): config.op: 'bigger' is not one of ['equals', ...]
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from jsonschema import Draft202012Validator

from flows import catalog
from flows.templates import TEMPLATE_PATTERN, TemplateSyntaxError, check_template

MAX_NODES = 200
MAX_EDGES = 500
MAX_NODE_CONFIG_BYTES = 16 * 1024
MAX_FLOW_BYTES = 256 * 1024
NODE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NODE_KEYS = {"id", "type", "config", "position", "label", "retry"}
EDGE_KEYS = {"source", "target", "port"}
DEFAULT_PORT = "out"

RETRY_SCHEMA = {
    "type": "object",
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "backoff_seconds": {"type": "number", "minimum": 0.1, "maximum": 3600},
    },
    "additionalProperties": False,
}
POSITION_SCHEMA = {
    "type": "object",
    "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
    "required": ["x", "y"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class GraphError:
    message: str
    node: str | None = None
    field: str | None = None
    # Incomplete, not wrong: allowed in drafts.
    incomplete: bool = False

    def __str__(self) -> str:
        where = []
        if self.node is not None:
            where.append(f'node "{self.node}"')
        if self.field:
            where.append(self.field)
        return f"{': '.join(where)}: {self.message}" if where else self.message


@cache
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json))


def _schema_errors(
    schema: dict, value: object, prefix: str, node: str | None, *, missing_is_incomplete: bool = True
) -> Iterable[GraphError]:
    """JSON Schema errors; a missing required key is only "incomplete" where a draft may lack it."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        parts = [str(part) for part in error.absolute_path]
        message = error.message
        if error.validator == "required":
            # Point at the missing key itself: config.values, not config.
            missing = [name for name in error.validator_value if name not in error.instance]
            parts.append(missing[0])
            message = "is required."
        field = ".".join([prefix, *parts])
        incomplete = missing_is_incomplete and error.validator == "required"
        yield GraphError(message, node=node, field=field, incomplete=incomplete)


def _template_errors(value: object, field: str, node: str) -> Iterable[GraphError]:
    """Check every template inside a config value: syntax and the root it reads from."""
    if isinstance(value, str):
        if "{{" in value or "}}" in value:
            try:
                check_template(value)
            except TemplateSyntaxError as exc:
                yield GraphError(str(exc), node=node, field=field)
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _template_errors(child, f"{field}.{key}", node)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _template_errors(child, f"{field}.{index}", node)


def validate_graph(
    flow_data: object,
    *,
    complete: bool,
    disabled_types: frozenset[str] = frozenset(),
) -> list[GraphError]:
    """Return every problem found; an empty list means the graph is valid."""
    if not isinstance(flow_data, dict):
        return [GraphError("must be an object with 'nodes' and 'edges' lists.")]
    unknown_keys = sorted(set(flow_data) - {"nodes", "edges"})
    errors = [GraphError("unknown key.", field=key) for key in unknown_keys]
    nodes, edges = flow_data.get("nodes", []), flow_data.get("edges", [])
    if not isinstance(nodes, list):
        return [*errors, GraphError("must be a list.", field="nodes")]
    if not isinstance(edges, list):
        return [*errors, GraphError("must be a list.", field="edges")]
    if len(nodes) > MAX_NODES:
        return [*errors, GraphError(f"at most {MAX_NODES} nodes are allowed (got {len(nodes)}).", field="nodes")]
    if len(edges) > MAX_EDGES:
        return [*errors, GraphError(f"at most {MAX_EDGES} edges are allowed (got {len(edges)}).", field="edges")]
    if len(json.dumps(flow_data)) > MAX_FLOW_BYTES:
        return [*errors, GraphError(f"the flow is larger than {MAX_FLOW_BYTES // 1024} KB.")]

    specs: dict[str, catalog.NodeSpec] = {}
    for index, node in enumerate(nodes):
        errors += _check_node(node, index, specs, disabled_types=disabled_types)
    # Edges cannot be checked against malformed nodes, nor the shape against broken edges.
    if not any(not e.incomplete for e in errors):
        edge_errors, successors = _check_edges(edges, specs)
        errors += edge_errors
        if not edge_errors:
            errors += _check_shape(specs, successors)
    if not complete:
        errors = [e for e in errors if not e.incomplete]
    return errors


def _check_node(node: object, index: int, specs: dict, *, disabled_types: frozenset[str]) -> list[GraphError]:
    field = f"nodes.{index}"
    if not isinstance(node, dict):
        return [GraphError("must be an object.", field=field)]
    node_id = node.get("id")
    # fullmatch: with match, `$` also matches before a final newline, and "a\n" passed.
    if not isinstance(node_id, str) or not NODE_ID_PATTERN.fullmatch(node_id):
        return [GraphError("id must be 1-64 letters, digits, '_' or '-'.", field=f"{field}.id")]
    if node_id in specs:
        return [GraphError("duplicate node id.", node=node_id, field="id")]
    errors = [GraphError("unknown key.", node=node_id, field=key) for key in sorted(set(node) - NODE_KEYS)]
    node_type = node.get("type")
    spec = catalog.get_spec(node_type) if isinstance(node_type, str) else None
    if spec is None:
        return [*errors, GraphError(f"unknown node type {node_type!r}.", node=node_id, field="type")]
    specs[node_id] = spec
    if node_type in disabled_types:
        errors.append(GraphError(f"node type {node_type!r} is disabled.", node=node_id, field="type", incomplete=True))
    config = node.get("config", {})
    if not isinstance(config, dict):
        return [*errors, GraphError("must be an object.", node=node_id, field="config")]
    if len(json.dumps(config)) > MAX_NODE_CONFIG_BYTES:
        return [
            *errors,
            GraphError(f"is larger than {MAX_NODE_CONFIG_BYTES // 1024} KB.", node=node_id, field="config"),
        ]
    errors += _schema_errors(spec.config_schema, config, "config", node_id)
    errors += _template_errors(config, "config", node_id)
    errors += [GraphError(message, node=node_id, field=f"config.{key}") for key, message in spec.check_config(config)]
    # A config setting may be filled in later; a position without `y` is just wrong.
    if "position" in node:
        errors += _schema_errors(POSITION_SCHEMA, node["position"], "position", node_id, missing_is_incomplete=False)
    if "retry" in node:
        errors += _schema_errors(RETRY_SCHEMA, node["retry"], "retry", node_id, missing_is_incomplete=False)
    if "label" in node and (not isinstance(node["label"], str) or len(node["label"]) > 200):
        errors.append(GraphError("must be a string of at most 200 characters.", node=node_id, field="label"))
    return errors


def _check_edges(edges: list, specs: dict) -> tuple[list[GraphError], dict[str, list[str]]]:
    errors: list[GraphError] = []
    successors: dict[str, list[str]] = {node_id: [] for node_id in specs}
    seen: set[tuple[str, str, str]] = set()
    for index, edge in enumerate(edges):
        field = f"edges.{index}"
        if not isinstance(edge, dict):
            errors.append(GraphError("must be an object.", field=field))
            continue
        errors += [GraphError("unknown key.", field=f"{field}.{key}") for key in sorted(set(edge) - EDGE_KEYS)]
        source, target, port = edge.get("source"), edge.get("target"), edge.get("port", DEFAULT_PORT)
        # A node id is a string; `{} in specs` would raise (unhashable) instead of failing.
        if not isinstance(source, str) or source not in specs:
            errors.append(GraphError(f"source {source!r} is not a node of this flow.", field=f"{field}.source"))
            continue
        if not isinstance(target, str) or target not in specs:
            errors.append(GraphError(f"target {target!r} is not a node of this flow.", field=f"{field}.target"))
            continue
        ports = specs[source].ports
        if port not in ports:
            allowed = ", ".join(repr(p) for p in ports) or "none (it ends the flow)"
            errors.append(
                GraphError(f"has no output port {port!r}; its ports are {allowed}.", node=source, field=f"{field}.port")
            )
            continue
        if specs[target].trigger:
            errors.append(GraphError("a trigger cannot have incoming edges.", node=target, field=f"{field}.target"))
            continue
        if (source, port, target) in seen:
            errors.append(GraphError("duplicate edge.", field=field))
            continue
        seen.add((source, port, target))
        successors[source].append(target)
    return errors, successors


def _check_shape(specs: dict[str, catalog.NodeSpec], successors: dict[str, list[str]]) -> list[GraphError]:
    errors: list[GraphError] = []
    cycle = _find_cycle(successors)
    if cycle:
        path = " -> ".join(cycle)
        errors.append(GraphError(f"the graph has a cycle: {path}.", node=cycle[0], field="edges"))
    triggers = [node_id for node_id, spec in specs.items() if spec.trigger]
    if len(triggers) > 1:
        listed = ", ".join(repr(t) for t in triggers)
        errors.append(GraphError(f"a flow has exactly one trigger; found {listed}.", field="nodes"))
    elif not triggers:
        errors.append(GraphError("the flow needs a trigger node.", field="nodes", incomplete=True))
    else:
        reachable = _reachable(triggers[0], successors)
        for node_id in specs:
            if node_id not in reachable:
                errors.append(
                    GraphError("is not reachable from the trigger.", node=node_id, field="edges", incomplete=True)
                )
    return errors


def _reachable(start: str, successors: dict[str, list[str]]) -> set[str]:
    seen, queue = {start}, deque([start])
    while queue:
        for child in successors[queue.popleft()]:
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return seen


def _find_cycle(successors: dict[str, list[str]]) -> list[str] | None:
    """An iterative depth-first search returning one cycle as a path, if any."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(successors, white)
    for root in successors:
        if colour[root] != white:
            continue
        stack = [(root, iter(successors[root]))]
        path = [root]
        colour[root] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = black
                stack.pop()
                path.pop()
            elif colour[child] == grey:
                return [*path[path.index(child) :], child]
            elif colour[child] == white:
                colour[child] = grey
                stack.append((child, iter(successors[child])))
                path.append(child)
    return None


def trigger_node(flow_data: dict) -> dict | None:
    """The trigger node of a (valid) graph."""
    for node in flow_data.get("nodes", []):
        spec = catalog.get_spec(node.get("type", ""))
        if spec is not None and spec.trigger:
            return node
    return None


__all__ = ["TEMPLATE_PATTERN", "GraphError", "trigger_node", "validate_graph"]
