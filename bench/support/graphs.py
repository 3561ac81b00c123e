"""Flow graphs the load benchmark seeds and posts: logic steps only, so runs need no network."""

from __future__ import annotations


def _at(x: int, y: int) -> dict:
    return {"x": x, "y": y}


def _branches(trigger: dict, label: str, x: int) -> dict:
    """trigger -> condition ("vip" in the text?) -> one logic.set on each port."""
    return {
        "nodes": [
            {"id": "t", **trigger, "position": _at(x, 0)},
            {
                "id": "c",
                "type": "logic.condition",
                "config": {"left": "{{ trigger.text }}", "op": "contains", "right": "vip"},
                "position": _at(x + 200, 0),
            },
            {"id": "v", "type": "logic.set", "config": {"values": {"tier": "vip"}}, "position": _at(x + 400, -80)},
            {
                "id": "r",
                "type": "logic.set",
                "config": {"values": {"tier": label, "who": "{{ trigger.username }}"}},
                "position": _at(x + 400, 80),
            },
        ],
        "edges": [
            {"source": "t", "target": "c"},
            {"source": "c", "target": "v", "port": "true"},
            {"source": "c", "target": "r", "port": "false"},
        ],
    }


def manual_graph(label: str = "regular", x: int = 0) -> dict:
    return _branches({"type": "trigger.manual", "config": {}}, label, x)


def comment_graph(keyword: str, x: int = 0) -> dict:
    return _branches({"type": "instagram.comment", "config": {"keywords": [keyword]}}, f"asked {keyword}", x)


def webhook_graph(x: int = 0) -> dict:
    return _branches({"type": "trigger.webhook", "config": {}}, "webhook", x)


def draft_graph(n: int) -> dict:
    """An unfinished draft: a trigger and a few unconnected steps, as editors save them."""
    graph = manual_graph(f"draft {n}", x=n % 7 * 10)
    graph["edges"] = graph["edges"][: n % 3]
    return graph
