"""Graph validation: precise messages naming the node and the field."""

from __future__ import annotations

import pytest

from flows.graph import MAX_NODES, validate_graph
from flows.models import Flow, NodeType

pytestmark = pytest.mark.django_db

DESIGN_EXAMPLE = {
    "nodes": [
        {"id": "t", "type": "instagram.comment", "config": {"keywords": ["price"]}},
        {
            "id": "c",
            "type": "logic.condition",
            "config": {"left": "{{ trigger.text }}", "op": "contains", "right": "vip"},
        },
        {"id": "a", "type": "instagram.private_reply", "config": {"text": "Hi {{ trigger.username }}!"}},
        {"id": "b", "type": "logic.delay", "config": {"seconds": 60}, "position": {"x": 10, "y": 20}},
    ],
    "edges": [
        {"source": "t", "target": "c"},
        {"source": "c", "target": "a", "port": "true"},
        {"source": "c", "target": "b", "port": "false"},
    ],
}


def messages(flow_data, complete=True, disabled=frozenset()) -> list[str]:
    return [str(e) for e in validate_graph(flow_data, complete=complete, disabled_types=disabled)]


def with_changes(**changes) -> dict:
    import copy

    data = copy.deepcopy(DESIGN_EXAMPLE)
    for key, value in changes.items():
        data[key] = value(data[key]) if callable(value) else value
    return data


def test_the_design_example_is_valid_and_keeps_positions():
    assert messages(DESIGN_EXAMPLE) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["nodes"][1].update(type="logic.teleport"),
            "node \"c\": type: unknown node type 'logic.teleport'.",
        ),
        (
            lambda d: d["nodes"][1]["config"].update(op="bigger"),
            "node \"c\": config.op: 'bigger' is not one of",
        ),
        (lambda d: d["nodes"][3]["config"].update(seconds="soon"), "node \"b\": config.seconds: 'soon' is not of type"),
        (
            lambda d: d["edges"].append({"source": "a", "target": "ghost"}),
            "edges.3.target: target 'ghost' is not a node",
        ),
        (
            lambda d: d["edges"].append({"source": {}, "target": ["t"]}),
            "edges.3.source: source {} is not a node",
        ),
        (
            lambda d: d["edges"].append({"source": "a", "target": {"id": "c"}}),
            "edges.3.target: target {'id': 'c'} is not a node",
        ),
        (
            lambda d: d["edges"].append({"source": "c", "target": "a", "port": "maybe"}),
            "node \"c\": edges.3.port: has no output port 'maybe'; its ports are 'true', 'false'.",
        ),
        (
            lambda d: d["edges"].append({"source": "b", "target": "c"}),
            'node "c": edges: the graph has a cycle: c -> b -> c.',
        ),
        (lambda d: d["edges"].append({"source": "a", "target": "t"}), "a trigger cannot have incoming edges."),
        (
            lambda d: d["nodes"].append({"id": "t2", "type": "trigger.manual", "config": {}}),
            "a flow has exactly one trigger; found 't', 't2'.",
        ),
        (
            lambda d: d["nodes"].append({"id": "c", "type": "logic.set", "config": {"values": {}}}),
            'node "c": id: duplicate',
        ),
        (lambda d: d["nodes"][0].update(colour="red"), 'node "t": colour: unknown key.'),
        (lambda d: d["nodes"][0].update(id="t\n"), "nodes.0.id: id must be 1-64 letters"),
        (lambda d: d["nodes"][0].update(position={"x": 1}), 'node "t": position.y: is required.'),
        (
            lambda d: d["nodes"][2]["config"].update(text="Hi {{ __import__('os') }}"),
            'node "a": config.text: "{{ __import__(\'os\') }}" is not a template',
        ),
        (
            lambda d: d["nodes"][2]["config"].update(text="Hi {{ secrets.key }}"),
            "must start with one of: trigger, nodes, vars",
        ),
        (
            lambda d: d["nodes"][1]["config"].update(op="regex", right="(unclosed"),
            'node "c": config.right: the pattern does not compile',
        ),
        (
            # Compiling this expands it to a million items (~270 MB); the real attack,
            # three levels of {65535}, asked for more than 20 GB.
            lambda d: d["nodes"][1]["config"].update(op="regex", right="(?:a{1000}){1000}"),
            'node "c": config.right: the pattern\'s fixed repeat counts are too large',
        ),
    ],
)
def test_wrong_graphs_are_refused_with_precise_messages(mutate, expected):
    import copy

    data = copy.deepcopy(DESIGN_EXAMPLE)
    mutate(data)
    found = messages(data, complete=False)  # wrong is wrong, even in a draft
    assert any(expected in message for message in found), found


def test_incomplete_graphs_are_fine_as_drafts_but_not_active():
    data = with_changes(
        nodes=lambda nodes: [*nodes[1:], {"id": "lonely", "type": "logic.set", "config": {}}],
        edges=lambda edges: [e for e in edges if e["source"] != "t"],
    )
    assert messages(data, complete=False) == []
    found = messages(data, complete=True)
    assert "nodes: the flow needs a trigger node." in found
    assert 'node "lonely": config.values: is required.' in found


def test_unreachable_nodes_and_disabled_types_block_activation():
    data = with_changes(nodes=lambda nodes: [*nodes, {"id": "island", "type": "logic.stop", "config": {}}])
    assert 'node "island": edges: is not reachable from the trigger.' in messages(data)
    assert "node \"b\": type: node type 'logic.delay' is disabled." in messages(
        DESIGN_EXAMPLE, disabled={"logic.delay"}
    )
    assert messages(DESIGN_EXAMPLE, complete=False, disabled={"logic.delay"}) == []


def test_limits():
    too_many = {
        "nodes": [{"id": f"n{i}", "type": "logic.stop", "config": {}} for i in range(MAX_NODES + 1)],
        "edges": [],
    }
    assert messages(too_many, complete=False) == [
        f"nodes: at most {MAX_NODES} nodes are allowed (got {MAX_NODES + 1})."
    ]
    big = with_changes()
    big["nodes"][2]["config"]["text"] = "x" * 20_000
    assert any("config: is larger than 16 KB." in m for m in messages(big, complete=False))


def test_schedule_and_http_configs_are_checked():
    schedule = {
        "nodes": [
            {"id": "s", "type": "trigger.schedule", "config": {"cron": "61 * * * *", "timezone": "Mars/Olympus"}}
        ],
        "edges": [],
    }
    found = messages(schedule)
    assert any(m.startswith('node "s": config.cron: is not a valid cron expression') for m in found), found
    assert any("'Mars/Olympus' is not a known time zone" in m for m in found)
    http = {
        "nodes": [
            {"id": "t", "type": "trigger.manual", "config": {}},
            {"id": "h", "type": "http.request", "config": {"url": "ftp://example.com/x"}},
        ],
        "edges": [{"source": "t", "target": "h"}],
    }
    assert 'node "h": config.url: must start with http:// or https://.' in messages(http)


def test_the_api_refuses_invalid_graphs_and_activation_of_incomplete_ones(api):
    bad = with_changes()
    bad["edges"].append({"source": "c", "target": "a", "port": "maybe"})
    response = api.post("/api/v1/flows/", {"name": "bad", "flow_data": bad}, format="json")
    assert response.status_code == 400
    assert "has no output port 'maybe'" in response.json()["detail"]

    draft = {"nodes": [{"id": "lonely", "type": "logic.set", "config": {}}], "edges": []}
    created = api.post("/api/v1/flows/", {"name": "draft", "flow_data": draft}, format="json")
    assert created.status_code == 201
    activate = api.patch(f"/api/v1/flows/{created.json()['id']}/", {"status": "active"}, format="json")
    assert activate.status_code == 400
    assert "needs a trigger node" in " ".join(activate.json()["errors"]["flow_data"])
    assert activate.json()["errors"]["status"]
    assert Flow.objects.get(pk=created.json()["id"]).status == "draft"

    running = api.post(f"/api/v1/flows/{created.json()['id']}/run/", {}, format="json")
    assert running.status_code == 409
    assert running.json()["code"] == "flow_incomplete"


def test_staff_disabling_a_type_blocks_activation(api):
    NodeType.objects.filter(type="logic.delay").update(enabled=False)
    response = api.post("/api/v1/flows/", {"name": "x", "flow_data": DESIGN_EXAMPLE, "status": "active"}, format="json")
    assert response.status_code == 400
    assert "disabled" in response.json()["detail"]
    catalog = {row["type"]: row for row in api.get("/api/v1/node-types/").json()}
    assert catalog["logic.delay"]["enabled"] is False


def test_the_node_type_catalog_api(api):
    rows = api.get("/api/v1/node-types/").json()
    by_type = {row["type"]: row for row in rows}
    from flows.catalog import all_specs

    assert set(by_type) == {spec.type for spec in all_specs()}
    assert by_type["logic.condition"]["ports"] == ["true", "false"]
    assert by_type["logic.condition"]["config_schema"]["properties"]["op"]["enum"][0] == "equals"
    assert set(by_type["http.request"]) == {
        "type",
        "name",
        "category",
        "description",
        "config_schema",
        "ports",
        "enabled",
    }
