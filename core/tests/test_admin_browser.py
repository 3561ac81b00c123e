"""The admin as a staff member sees it: Debian's headless Chromium, driven by Playwright.

A real login through the form (CSRF included), then the admin index chart, a flow's graph
and an execution's path taken, under the real Content-Security-Policy. Full-page
screenshots land in artifacts/screenshots/ for a person to look at.

Playwright's own browser downloads are not used: scripts/install_chromium.sh (run by
`make test`) installs Debian's chromium, launched here through executable_path. Without it
the test is skipped and says why.

Django's ORM refuses to run while Playwright's event loop is active in this thread, so
all data is written before the browser starts.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import User
from conftest import PASSWORD
from executions.models import FlowExecution
from flows.drawing import MIN_SCALE
from flows.models import Flow, FlowVersion

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# Headless on a closed network: no GPU, no sandbox (CI runs as root), and none of the
# background traffic (component updates, sync, QUIC probes) a fresh profile starts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GRAPH = {
    "nodes": [
        {"id": "comment", "type": "instagram.comment", "config": {"keywords": ["price"]}},
        {
            "id": "vip",
            "type": "logic.condition",
            "label": "VIP customer?",
            "config": {"left": "{{ trigger.text }}", "op": "contains", "right": "vip"},
        },
        {"id": "reply", "type": "instagram.private_reply", "config": {"text": "Hi {{ trigger.username }}!"}},
        {"id": "crm", "type": "http.request", "label": "Tag in CRM", "config": {"url": "https://crm.example.net/t"}},
        {"id": "wait", "type": "logic.delay", "config": {"seconds": 3600}},
        {"id": "followup", "type": "instagram.send_message", "config": {"text": "Still interested?"}},
    ],
    "edges": [
        {"source": "comment", "target": "vip"},
        {"source": "vip", "target": "reply", "port": "true"},
        {"source": "vip", "target": "wait", "port": "false"},
        {"source": "reply", "target": "crm"},
        {"source": "wait", "target": "followup"},
    ],
}


def _step(node_id: str, node_type: str, status: str, attempt: int, ms: float, **extra) -> dict:
    return {
        "node_id": node_id,
        "type": node_type,
        "status": status,
        "attempt": attempt,
        "started_at": "2025-01-06T10:00:00.000000+00:00",
        "finished_at": "2025-01-06T10:00:00.250000+00:00",
        "duration_ms": ms,
        "output": None,
        "error": None,
        **extra,
    }


# The "true" branch was taken; the private reply succeeded on its second attempt; the CRM
# call failed for good. The "false" branch (wait, followup) never ran.
EXECUTION_LOG = [
    _step("vip", "logic.condition", "succeeded", 1, 0.4, port="true", output={"result": True}),
    _step("reply", "instagram.private_reply", "failed", 1, 812.0, error="HTTP 503 from the Graph API"),
    _step("reply", "instagram.private_reply", "succeeded", 2, 240.5, port="out", output={"message_id": "m_1"}),
    _step("crm", "http.request", "failed", 1, 95.2, error="HTTP 500 from crm.example.net"),
    _step("crm", "http.request", "failed", 2, 101.7, error="HTTP 500 from crm.example.net (gave up after 2 attempts)"),
]
# A flow too long for the page: ten nodes in a row.
LONG_GRAPH = {
    "nodes": [{"id": "start", "type": "trigger.manual", "config": {}}]
    + [{"id": f"step{i}", "type": "logic.set", "config": {"values": {"n": i}}} for i in range(1, 10)],
    "edges": [{"source": "start", "target": "step1"}]
    + [{"source": f"step{i}", "target": f"step{i + 1}"} for i in range(1, 9)],
}
# More runs for the index chart, as (hours ago, status, how many); the execution with the
# log above adds one failed run an hour ago.
CHART_RUNS = [(0, "succeeded", 4), (1, "succeeded", 6), (1, "failed", 2), (5, "cancelled", 3)]


def _launch(playwright, profile: str):
    """Chromium on a fresh profile, or a skip that says why it cannot run."""
    from playwright.sync_api import Error as PlaywrightError

    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (scripts/install_chromium.sh installs it)")
    try:
        return playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
    except PlaywrightError as exc:
        # The first line is Playwright's summary; the browser's own stderr and exit code follow.
        lines = str(exc).splitlines()
        details = [line.strip() for line in lines if "[err]" in line or "exitCode" in line][-4:]
        pytest.skip(f"Chromium at {CHROMIUM} did not start: {' | '.join([lines[0], *details])}")


def _watch(page) -> list[str]:
    """Everything that goes wrong in the browser: console errors, page errors, failed requests.

    Chromium asks every new site for /favicon.ico, which Inflow does not serve: that 404
    (and its console line) is expected and left out.
    """
    problems: list[str] = []
    favicon_404 = "Failed to load resource: the server responded with a status of 404"

    def on_console(message) -> None:
        if message.type == "error" and not (
            message.text.startswith(favicon_404) and message.location.get("url", "").endswith("/favicon.ico")
        ):
            problems.append(f"console: {message.text} ({message.location.get('url')})")

    def on_response(response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            problems.append(f"HTTP {response.status}: {response.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url} {request.failure}"))
    page.on("response", on_response)
    # Injected by Playwright outside the page's CSP; records what the policy blocks.
    page.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', e => "
        "window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    return problems


def _assert_clean(page, problems: list[str]) -> None:
    """No problem so far, and no CSP violation on the current page (the record starts anew on each page)."""
    assert page.evaluate("window.__cspViolations") == [], page.url
    assert problems == [], page.url


def _assert_nothing_scrolls(page) -> None:
    """Inflow's wide fields scroll sideways when they must; these examples fit without."""
    overflowing = page.eval_on_selector_all(
        ".inflow-wide", "els => els.filter(e => e.scrollWidth > e.clientWidth).map(e => e.innerHTML.slice(0, 80))"
    )
    assert overflowing == [], page.url


def _assert_svg_fits(page, selector: str) -> None:
    """The picture is whole on the page, at (nearly) its own size, with its nodes apart.

    Whole: nothing around it clips it or makes it scroll. Nearly its own size: a graph may
    shrink to MIN_SCALE to fit. Nodes apart: no two node boxes overlap and every text of a
    node stays inside its box.
    """
    geometry = page.evaluate(
        """selector => {
            const svg = document.querySelector(selector);
            const box = svg.getBoundingClientRect();
            const clippedBy = [];
            for (let e = svg.parentElement; e; e = e.parentElement) {
                const style = getComputedStyle(e);
                const clips = style.overflowX !== 'visible' || style.overflowY !== 'visible';
                if (clips && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
                        && e !== document.documentElement && e !== document.body) {
                    clippedBy.push(e.tagName + '.' + e.className);
                }
            }
            const rect = r => { const b = r.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
            const nodes = [...svg.querySelectorAll('g.inflow-node')].map(g => ({
                id: g.dataset.nodeId, box: rect(g.querySelector('rect')),
                texts: [...g.querySelectorAll('text')].map(t => ({text: t.textContent, box: rect(t)})),
            }));
            return {scale: box.width / svg.width.baseVal.value, left: box.left, right: box.right,
                    viewport: document.documentElement.clientWidth,
                    pageWidth: document.documentElement.scrollWidth, clippedBy, nodes};
        }""",
        selector,
    )
    assert geometry["clippedBy"] == [], geometry
    assert geometry["left"] >= 0, geometry
    assert geometry["right"] <= geometry["viewport"], geometry
    assert geometry["pageWidth"] <= geometry["viewport"], geometry  # no sideways scrolling
    assert geometry["scale"] >= MIN_SCALE - 0.01, geometry
    nodes = geometry["nodes"]
    for index, node in enumerate(nodes):
        left, top, right, bottom = node["box"]
        for text in node["texts"]:
            t_left, t_top, t_right, t_bottom = text["box"]
            inside = left < t_left and t_right < right and top < t_top and t_bottom < bottom
            assert inside, (node["id"], text)
        for other in nodes[index + 1 :]:
            o_left, o_top, o_right, o_bottom = other["box"]
            assert right <= o_left or o_right <= left or bottom <= o_top or o_bottom <= top, (node, other)


def test_staff_sees_the_admin_pictures_in_chromium(live_server, make_user):
    from playwright.sync_api import expect, sync_playwright

    make_user(email="staff@inflow.localhost", role=User.Role.ADMIN, is_superuser=True)
    owner = make_user(name="Flow Owner")
    flow = Flow.objects.create(user=owner, name="Price comments", status=Flow.Status.ACTIVE, flow_data=GRAPH)
    assert flow.graph_errors(complete=True) == []
    long_flow = Flow.objects.create(user=owner, name="Long", flow_data=LONG_GRAPH)
    assert long_flow.graph_errors(complete=True) == []
    now = timezone.now()
    execution = FlowExecution.objects.create(
        flow=flow,
        flow_version_id=FlowVersion.objects.id_for(flow.pk, flow.flow_data),  # as start_execution does
        user=owner,
        status=FlowExecution.Status.FAILED,
        trigger_type="instagram.comment",
        trigger_data={"text": "price? vip", "username": "ana", "comment_id": "c_1"},
        execution_log=EXECUTION_LOG,
        error='Step "crm" failed: HTTP 500 from crm.example.net (gave up after 2 attempts)',
        started_at=now - timedelta(hours=1),
        completed_at=now - timedelta(hours=1) + timedelta(seconds=2),
    )
    # Something to chart: runs over the last hours, in three statuses.
    FlowExecution.objects.bulk_create(
        FlowExecution(flow=flow, user=owner, status=status, started_at=now - timedelta(hours=hours_ago))
        for hours_ago, status, count in CHART_RUNS
        for _ in range(count)
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="inflow-chromium-") as profile:
        context = _launch(playwright, profile)
        try:
            context.set_default_timeout(15_000)
            page = context.new_page()
            problems = _watch(page)

            # A real login: the form, its CSRF token and the session cookie.
            response = page.goto(f"{live_server.url}/admin/login/?next=/admin/")
            assert "script-src 'self';" in response.headers["content-security-policy"]
            page.fill("#id_username", "staff@inflow.localhost")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{live_server.url}/admin/")
            expect(page.locator("#user-tools")).to_contain_text("Log out")
            # The admin's stylesheet is served and applied (a styled page, not raw HTML).
            header_colour = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
            assert header_colour not in ("rgba(0, 0, 0, 0)", "transparent")

            chart = page.locator("#executions-per-hour svg.inflow-chart")
            expect(chart).to_be_visible()
            bars = chart.locator("rect.inflow-bar")
            expect(bars).to_have_count(4)  # one bar segment per hour and status
            counts = {(bar.get_attribute("data-status"), int(bar.get_attribute("data-count"))) for bar in bars.all()}
            assert counts == {("succeeded", 4), ("succeeded", 6), ("failed", 3), ("cancelled", 3)}
            assert all(bar.bounding_box()["height"] > 0 for bar in bars.all())
            page.screenshot(path=SCREENSHOTS / "admin-index.png", full_page=True)
            _assert_svg_fits(page, "svg.inflow-chart")
            _assert_clean(page, problems)

            page.goto(f"{live_server.url}/admin/flows/flow/{flow.pk}/change/")
            graph = page.locator("svg.inflow-graph")
            expect(graph).to_be_visible()
            expect(graph.locator("g.inflow-node")).to_have_count(6)
            expect(graph.locator("path.inflow-edge")).to_have_count(5)
            assert sorted(graph.locator("text.inflow-port").all_text_contents()) == ["false", "true"]
            expect(graph.locator('g.inflow-node[data-node-id="vip"]')).to_contain_text("VIP customer?")
            expect(page.locator(".field-problems")).to_contain_text("None: the graph is complete and valid.")
            page.screenshot(path=SCREENSHOTS / "flow.png", full_page=True)
            _assert_svg_fits(page, "svg.inflow-graph")
            _assert_nothing_scrolls(page)
            _assert_clean(page, problems)

            # Too wide even shrunk: the picture scrolls sideways inside its field, cut off nowhere.
            page.goto(f"{live_server.url}/admin/flows/flow/{long_flow.pk}/change/")
            wide = page.locator(".field-graph .inflow-wide")
            assert wide.evaluate("e => e.scrollWidth > e.clientWidth")
            assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
            last = page.locator('g.inflow-node[data-node-id="step9"]')
            last.scroll_into_view_if_needed()
            assert wide.evaluate("e => e.scrollLeft > 0")
            box, field = last.bounding_box(), wide.bounding_box()
            assert field["x"] <= box["x"]
            assert box["x"] + box["width"] <= field["x"] + field["width"]
            _assert_clean(page, problems)

            page.goto(f"{live_server.url}/admin/executions/flowexecution/{execution.pk}/change/")
            picture = page.locator("svg.inflow-graph")
            expect(picture).to_be_visible()
            page.screenshot(path=SCREENSHOTS / "execution.png", full_page=True)
            statuses = {
                node.get_attribute("data-node-id"): node.get_attribute("data-status")
                for node in picture.locator("g.inflow-node").all()
            }
            assert statuses == {
                "comment": "succeeded",  # the trigger
                "vip": "succeeded",
                "reply": "succeeded",
                "crm": "failed",
                "wait": "",  # the branch not taken
                "followup": "",
            }
            expect(picture.locator('g[data-node-id="reply"] text.inflow-step')).to_contain_text("2 tries")
            expect(picture.locator('g[data-node-id="crm"] text.inflow-step')).to_contain_text("failed")
            expect(picture.locator("path.inflow-edge.taken")).to_have_count(3)  # trigger→vip→reply→crm
            _assert_svg_fits(page, "svg.inflow-graph")
            _assert_nothing_scrolls(page)
            rows = page.locator("table.inflow-steps tbody tr")
            expect(rows).to_have_count(len(EXECUTION_LOG))
            expect(rows.nth(1)).to_contain_text("HTTP 503 from the Graph API")
            expect(rows.nth(4)).to_contain_text("gave up after 2 attempts")
            _assert_clean(page, problems)
        finally:
            context.close()
