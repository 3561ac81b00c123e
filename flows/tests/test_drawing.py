"""The SVG picture of a flow and of the path a run took (flows/drawing.py)."""

from __future__ import annotations

import pytest

from flows.drawing import format_ms, render_svg

GRAPH = {
    "nodes": [
        {"id": "t", "type": "trigger.manual", "config": {}},
        {"id": "s", "type": "logic.set", "config": {"values": {"a": 1}}},
    ],
    "edges": [{"source": "t", "target": "s"}],
}


@pytest.mark.parametrize(
    ("duration_ms", "shown"),
    [
        (None, ""),
        (0, "<0.1 ms"),
        (0.04, "<0.1 ms"),
        (0.4, "0.4 ms"),
        (12.0, "12.0 ms"),
        (99.94, "99.9 ms"),
        (812.4, "812 ms"),
    ],
)
def test_durations_read_well_and_a_fast_step_is_never_0_ms(duration_ms, shown):
    assert format_ms(duration_ms) == shown


def test_a_step_badge_shows_its_duration():
    log = [{"node_id": "s", "status": "succeeded", "duration_ms": 0.02}]
    picture = render_svg(GRAPH, log)
    assert "succeeded · &lt;0.1 ms" in picture
    assert " 0 ms" not in picture
