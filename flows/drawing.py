"""Draw a flow graph as an SVG picture, optionally with the path an execution took.

Plain Python, no JavaScript: the admin inlines the SVG, so it works under a strict
Content-Security-Policy. Layout is layered: a node's column is its longest distance from
the trigger, and nodes in a column are ordered by the average row of their parents, which
keeps most edges short and uncrossed for the small graphs flows are.

Every label comes from user data (node ids, types, labels), so all text is escaped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

from flows import catalog

NODE_WIDTH, NODE_HEIGHT = 170, 58
COLUMN_GAP, ROW_GAP, MARGIN = 70, 28, 24
MIN_SCALE = 0.8
CATEGORY_FILL = {"trigger": "#e8f0fe", "action": "#fef3e2", "logic": "#f1f3f4", "knowledge": "#e6f4ea"}
OTHER_CATEGORY_FILL = "#ffffff"  # a category without a colour of its own yet
UNKNOWN_TYPE_FILL = "#fce8e6"
STATUS_STROKE = {
    "succeeded": "#188038",
    "failed": "#d93025",
    "running": "#1a73e8",
    "waiting": "#f29900",
    "cancelled": "#5f6368",
}


@dataclass
class StepSummary:
    status: str
    attempts: int
    duration_ms: float | None
    error: str | None


def format_ms(duration_ms: float | None) -> str:
    """A step's duration for people: "<0.1 ms", "0.4 ms", "12.0 ms", "812 ms" ("" if unknown)."""
    if duration_ms is None:
        return ""
    if duration_ms < 0.1:
        return "<0.1 ms"
    return f"{duration_ms:.1f} ms" if duration_ms < 100 else f"{duration_ms:.0f} ms"


def summarize_steps(execution_log: list[dict]) -> dict[str, StepSummary]:
    """The last attempt of each node, with how many attempts it took."""
    summary: dict[str, StepSummary] = {}
    for entry in execution_log:
        node_id = entry.get("node_id")
        if not isinstance(node_id, str):
            continue
        previous = summary.get(node_id)
        summary[node_id] = StepSummary(
            status=str(entry.get("status", "")),
            attempts=(previous.attempts if previous else 0) + 1,
            duration_ms=entry.get("duration_ms"),
            error=entry.get("error"),
        )
    return summary


def _layout(nodes: list[dict], edges: list[dict]) -> dict[str, tuple[float, float]]:
    ids = [node["id"] for node in nodes]
    parents: dict[str, list[str]] = defaultdict(list)
    children: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge.get("source") in ids and edge.get("target") in ids:
            parents[edge["target"]].append(edge["source"])
            children[edge["source"]].append(edge["target"])

    column: dict[str, int] = {}
    indegree = {node_id: len(set(parents[node_id])) for node_id in ids}
    ready = [node_id for node_id in ids if indegree[node_id] == 0]
    while ready:  # Kahn's order: every parent is placed before its children
        node_id = ready.pop(0)
        column.setdefault(node_id, 0)
        for child in dict.fromkeys(children[node_id]):
            column[child] = max(column.get(child, 0), column[node_id] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    for node_id in ids:  # nodes on a cycle (an invalid draft) go in the first free column
        column.setdefault(node_id, max(column.values(), default=-1) + 1)

    rows: dict[str, float] = {}
    by_column: dict[int, list[str]] = defaultdict(list)
    for node_id in ids:
        by_column[column[node_id]].append(node_id)
    for index in sorted(by_column):
        members = by_column[index]
        members.sort(
            key=lambda n: (
                sum(rows[p] for p in parents[n] if p in rows) / max(1, len([p for p in parents[n] if p in rows]))
            )
        )
        for row, node_id in enumerate(members):
            rows[node_id] = row
    return {
        node_id: (
            MARGIN + column[node_id] * (NODE_WIDTH + COLUMN_GAP),
            MARGIN + rows[node_id] * (NODE_HEIGHT + ROW_GAP),
        )
        for node_id in ids
    }


def _port_anchors(nodes: list[dict], edges: list[dict]) -> dict[str, dict[str, float]]:
    """Where each output port leaves its node: spread down the right side, in the catalog's order."""
    used: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        port = edge.get("port", "out")
        if port not in used[edge.get("source")]:
            used[edge.get("source")].append(port)
    anchors: dict[str, dict[str, float]] = {}
    for node in nodes:
        spec = catalog.get_spec(str(node.get("type")))
        ports = used[node["id"]]
        ports.sort(key=lambda port: spec.ports.index(port) if spec and port in spec.ports else len(ports))
        anchors[node["id"]] = {port: NODE_HEIGHT * (i + 1) / (len(ports) + 1) for i, port in enumerate(ports)}
    return anchors


def _truncate(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def render_svg(flow_data: object, execution_log: list[dict] | None = None) -> str:
    """An <svg> element for the graph; with a log, the path taken and each step's status."""
    if not isinstance(flow_data, dict):
        return ""
    nodes = [n for n in flow_data.get("nodes", []) if isinstance(n, dict) and isinstance(n.get("id"), str)]
    edges = [  # a draft may hold anything: only edges of string ids and ports can be drawn
        e
        for e in flow_data.get("edges", [])
        if isinstance(e, dict) and all(isinstance(e.get(key, "out"), str) for key in ("source", "target", "port"))
    ]
    if not nodes:
        return '<p class="inflow-graph-empty">This flow has no nodes yet.</p>'
    positions = _layout(nodes, edges)
    steps = summarize_steps(execution_log) if execution_log is not None else {}
    taken_ports = {
        (entry.get("node_id"), entry.get("port"))
        for entry in (execution_log or [])
        if entry.get("status") == "succeeded"
    }
    trigger_ids = {n["id"] for n in nodes if (spec := catalog.get_spec(str(n.get("type")))) and spec.trigger}

    width = max(x for x, _ in positions.values()) + NODE_WIDTH + MARGIN
    height = max(y for _, y in positions.values()) + NODE_HEIGHT + MARGIN
    parts = [
        f'<svg class="inflow-graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="Flow graph" font-family="sans-serif" '
        # Shrinks a little to fit a narrow page; a wider graph scrolls rather than turn illegible.
        f'style="max-width: 100%; height: auto; min-width: {width * MIN_SCALE:.0f}px">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" '
        'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" fill="#5f6368"/></marker></defs>',
    ]
    anchors = _port_anchors(nodes, edges)
    for edge in edges:
        source, target = edge.get("source"), edge.get("target")
        if source not in positions or target not in positions:
            continue
        port = edge.get("port", "out")
        (sx, sy), (tx, ty) = positions[source], positions[target]
        x1, y1, x2, y2 = sx + NODE_WIDTH, sy + anchors[source].get(port, NODE_HEIGHT / 2), tx, ty + NODE_HEIGHT / 2
        taken = execution_log is not None and (
            (source, port) in taken_ports or (source in trigger_ids and target in steps)
        )
        stroke = "#188038" if taken else ("#dadce0" if execution_log is not None else "#5f6368")
        bend = max(COLUMN_GAP / 2, abs(x2 - x1) / 2)
        parts.append(
            f'<path class="inflow-edge{" taken" if taken else ""}" d="M {x1:.0f} {y1:.0f} C {x1 + bend:.0f} {y1:.0f} '
            f'{x2 - bend:.0f} {y2:.0f} {x2:.0f} {y2:.0f}" fill="none" stroke="{stroke}" '
            f'stroke-width="{3 if taken else 1.5}" marker-end="url(#arrow)"/>'
        )
        if port != "out":
            # Beside the start of its own edge, on the side the edge turns away from, so
            # neither the edge nor a sibling port's label crosses it.
            label_y = y1 + 13 if y2 < y1 else y1 - 5
            parts.append(
                f'<text class="inflow-port" x="{x1 + 6:.0f}" y="{label_y:.0f}" font-size="11" '
                f'fill="#5f6368">{escape(str(port))}</text>'
            )
    for node in nodes:
        node_id = node["id"]
        x, y = positions[node_id]
        node_type = str(node.get("type", "?"))
        spec = catalog.get_spec(node_type)
        fill = CATEGORY_FILL.get(spec.category, OTHER_CATEGORY_FILL) if spec else UNKNOWN_TYPE_FILL
        step = steps.get(node_id)
        status = step.status if step else ("succeeded" if execution_log is not None and node_id in trigger_ids else "")
        stroke = STATUS_STROKE.get(status, "#dadce0" if execution_log is not None else "#5f6368")
        title = escape(f"{node_id} ({node_type})" + (f": {step.error}" if step and step.error else ""))
        label = escape(_truncate(str(node.get("label") or node_id), 22))
        detail = escape(_truncate(node_type, 26))
        parts.append(
            f'<g class="inflow-node" data-node-id="{escape(node_id)}" data-status="{escape(status)}">'
            f"<title>{title}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="8" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2.5 if status else 1.2}"/>'
            f'<text x="{x + 10:.0f}" y="{y + 22:.0f}" font-size="13" font-weight="bold" fill="#202124">{label}</text>'
            f'<text x="{x + 10:.0f}" y="{y + 40:.0f}" font-size="11" fill="#5f6368">{detail}</text>'
        )
        if step:
            badge = f"{step.status}"
            if step.duration_ms is not None:
                badge += f" · {format_ms(step.duration_ms)}"
            if step.attempts > 1:
                badge += f" · {step.attempts} tries"
            parts.append(
                f'<text class="inflow-step" x="{x + 10:.0f}" y="{y + NODE_HEIGHT - 6:.0f}" font-size="10" '
                f'fill="{stroke}">{escape(badge)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def admin_picture(flow_data: object, execution_log: list[dict] | None = None) -> SafeString:
    """render_svg in the admin's wide block: a row of its own, scrolling sideways if too wide."""
    return mark_safe(f'<div class="inflow-wide">{render_svg(flow_data, execution_log)}</div>')  # noqa: S308 (escaped)
