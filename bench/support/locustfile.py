"""Locust users for bench/load.py (run by it with `locust --headless`; not a benchmark itself).

bench/load.py writes the seeded accounts to a JSON file named by INFLOW_LOAD_CONFIG and picks
one user class per phase on the command line. Every request is recorded with its start time,
latency and status, and written to INFLOW_LOAD_RESULTS when locust quits, so bench/load.py
computes exact percentiles over the window after all users have spawned. A request counts as
failed when its status is not the one the API promises for it (a redirect to HTTPS, for
instance, would be a failure, not a success). INFLOW_LOAD_MAX_REQUESTS bounds the count.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import gevent
from locust import FastHttpUser, constant, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.support.graphs import manual_graph
from bench.support.stack import PROXY_HEADERS, comment_delivery, sign

CONFIG = json.loads(Path(os.environ["INFLOW_LOAD_CONFIG"]).read_text())
RESULTS_PATH = Path(os.environ["INFLOW_LOAD_RESULTS"])
MAX_REQUESTS = int(os.environ.get("INFLOW_LOAD_MAX_REQUESTS", "0"))
THINK_SECONDS = float(os.environ.get("INFLOW_LOAD_THINK_MS", "0")) / 1000

_accounts = itertools.count()
_comments = itertools.count(1)
_records: list[list] = []
_errors: dict[str, list[str]] = {}
_window = {"spawned_at": None, "stopped_at": None}


@events.request.add_listener
def record(request_type, name, response_time, response_length, response=None, exception=None, start_time=None, **_):
    status = getattr(response, "status_code", 0) or 0
    _records.append([name, start_time or time.time() - response_time / 1000, response_time, status, exception is None])
    if exception is not None and len(_errors.setdefault(name, [])) < 5:
        _errors[name].append(f"{status}: {exception}"[:300])
    if MAX_REQUESTS and len(_records) == MAX_REQUESTS:
        gevent.spawn(_environments[0].runner.quit)


_environments: list = []


@events.init.add_listener
def remember_environment(environment, **_):
    _environments.append(environment)


@events.spawning_complete.add_listener
def spawned(user_count, **_):
    _window["spawned_at"] = time.time()


@events.test_stop.add_listener
def stopped(**_):
    _window["stopped_at"] = _window["stopped_at"] or time.time()


@events.quitting.add_listener
def write_results(**_):
    _window["stopped_at"] = _window["stopped_at"] or time.time()
    RESULTS_PATH.write_text(json.dumps({**_window, "records": _records, "errors": _errors}))


class InflowUser(FastHttpUser):
    """One API client: an account's key, its flows and its Instagram account."""

    abstract = True
    wait_time = constant(THINK_SECONDS)
    network_timeout = 30.0
    connection_timeout = 10.0
    default_headers = PROXY_HEADERS

    def on_start(self) -> None:
        self.account = CONFIG["accounts"][next(_accounts) % len(CONFIG["accounts"])]
        self.auth = {"Authorization": f"Token {self.account['key']}"}
        self.detail_ids = itertools.cycle(self.account["flow_ids"])
        self.created: list[int] = []
        self.executions: list[int] = []

    def call(self, method: str, path: str, name: str, expect: int, **kwargs):
        headers = {**self.auth, **kwargs.pop("headers", {})}
        with self.client.request(
            method, path, name=name, headers=headers, catch_response=True, allow_redirects=False, **kwargs
        ) as resp:
            if resp.status_code != expect:
                resp.failure(f"HTTP {resp.status_code} (expected {expect}): {(resp.text or '')[:200]}")
                return None
            resp.success()
            return resp


class MixedUser(InflowUser):
    """The mixed workload: API reads and writes, manual runs, signed webhooks, search."""

    @task(20)
    def flow_list(self) -> None:
        self.call("GET", "/api/v1/flows/", "GET /api/v1/flows/", 200)

    @task(20)
    def flow_detail(self) -> None:
        self.call("GET", f"/api/v1/flows/{next(self.detail_ids)}/", "GET /api/v1/flows/{id}/", 200)

    @task(3)
    def flow_create(self) -> None:
        body = {"name": f"draft {random.randrange(10**6)}", "status": "draft", "flow_data": manual_graph("new")}
        resp = self.call("POST", "/api/v1/flows/", "POST /api/v1/flows/", 201, json=body)
        if resp is not None:
            self.created.append(resp.json()["id"])

    @task(3)
    def flow_update(self) -> None:
        if not self.created:
            return self.flow_create()
        body = {"name": f"edited {random.randrange(10**6)}", "flow_data": manual_graph("edited", random.randrange(500))}
        self.call("PATCH", f"/api/v1/flows/{random.choice(self.created)}/", "PATCH /api/v1/flows/{id}/", 200, json=body)

    @task(1)
    def flow_delete(self) -> None:
        if len(self.created) > 3:
            self.call("DELETE", f"/api/v1/flows/{self.created.pop(0)}/", "DELETE /api/v1/flows/{id}/", 204)

    @task(8)
    def flow_run(self) -> None:
        flow_id = random.choice(self.account["manual_flow_ids"])
        body = {"trigger_data": {"text": random.choice(["vip order", "hello"]), "user": f"u{random.randrange(999)}"}}
        resp = self.call("POST", f"/api/v1/flows/{flow_id}/run/", "POST /api/v1/flows/{id}/run/", 202, json=body)
        if resp is not None:
            self.executions.append(resp.json()["id"])
            del self.executions[:-20]

    @task(8)
    def execution_list(self) -> None:
        self.call("GET", "/api/v1/executions/", "GET /api/v1/executions/", 200)

    @task(3)
    def execution_detail(self) -> None:
        if self.executions:
            execution_id = random.choice(self.executions)
            self.call("GET", f"/api/v1/executions/{execution_id}/", "GET /api/v1/executions/{id}/", 200)

    @task(20)
    def meta_comment(self) -> None:
        """A signed comment delivery with a new comment id: one execution of the price flow."""
        n = next(_comments)
        body = comment_delivery(
            account_id=self.account["account_id"],
            comment_id=f"{CONFIG['run_tag']}{n:09d}",
            from_id=f"5{random.randrange(10**9):09d}",
            username=f"fan{n}",
            text=f"What's the price of #{n}?",
        )
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, CONFIG["app_secret"])}
        with self.client.post(
            "/webhooks/meta/",
            data=body,
            headers=headers,
            name="POST /webhooks/meta/",
            catch_response=True,
            allow_redirects=False,
        ) as resp:
            if resp.status_code == 200 and b'"received"' in (resp.content or b""):
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")

    @task(6)
    def knowledge_search(self) -> None:
        if CONFIG["search_terms"]:
            query = urlencode({"q": random.choice(CONFIG["search_terms"]), "k": 5})
            self.call("GET", f"/api/v1/knowledge/search/?{query}", "GET /api/v1/knowledge/search/", 200)

    @task(2)
    def node_types(self) -> None:
        self.call("GET", "/api/v1/node-types/", "GET /api/v1/node-types/", 200)

    @task(1)
    def tokens(self) -> None:
        self.call("GET", "/api/v1/tokens/", "GET /api/v1/tokens/", 200)

    @task(3)
    def healthz(self) -> None:
        self.call("GET", "/healthz", "GET /healthz", 200)


# --- Baseline phases: one endpoint each, the same accounts and the same flows -----------


class DrfList(InflowUser):
    @task
    def get(self) -> None:
        self.call("GET", "/api/v1/flows/", "DRF flow list", 200)


class PlainList(InflowUser):
    @task
    def get(self) -> None:
        self.call("GET", "/bench/flows/", "plain flow list", 200)


class DrfDetail(InflowUser):
    @task
    def get(self) -> None:
        self.call("GET", f"/api/v1/flows/{next(self.detail_ids)}/", "DRF flow detail", 200)


class PlainDetail(InflowUser):
    @task
    def get(self) -> None:
        self.call("GET", f"/bench/flows/{next(self.detail_ids)}/", "plain flow detail", 200)


class Warmup(InflowUser):
    """Reads only (no executions), so gunicorn's workers have imported and connected."""

    @task
    def reads(self) -> None:
        flow_id = next(self.detail_ids)
        for path in ("/api/v1/flows/", "/bench/flows/", f"/api/v1/flows/{flow_id}/", f"/bench/flows/{flow_id}/"):
            self.call("GET", path, "warm-up", 200)
        self.call("GET", "/api/v1/executions/", "warm-up", 200)
        if CONFIG["search_terms"]:
            query = urlencode({"q": CONFIG["search_terms"][0]})
            self.call("GET", f"/api/v1/knowledge/search/?{query}", "warm-up", 200)
