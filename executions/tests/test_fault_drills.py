"""Fault drills: a bad day, on purpose. Zero runs lost, stuck, or with a side effect done twice.

Each drill prints how long recovery took (visible with `pytest -s`).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from conftest import _WORKER_LOGS, BASE_DIR, worker_env
from core.testing import FakeHTTPServer, Reply, wait_for
from executions.models import FlowExecution
from executions.tasks import run_execution, sweep_executions
from executions.tests.test_worker_execution import make_flow, run, wait_status
from flows.models import Flow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

FAST_LIVENESS = {"EXECUTION_HEARTBEAT_TIMEOUT": "3", "EXECUTION_HEARTBEAT_SECONDS": "1"}


def completed_steps(execution: FlowExecution) -> Counter:
    return Counter(entry["node_id"] for entry in execution.execution_log if entry["status"] == "succeeded")


def test_repeated_kill_9_mid_step(start_worker, api, user, settings):
    """Kill the worker during each of three slow steps; the run still ends well, once."""
    settings.EXECUTION_HEARTBEAT_TIMEOUT = 3
    with FakeHTTPServer(lambda request: Reply(200, {"path": request.path}, delay=2)) as server:
        flow = make_flow(
            user,
            [
                {"id": "one", "type": "http.request", "config": {"url": f"{server.url}/one"}},
                {"id": "two", "type": "http.request", "config": {"url": f"{server.url}/two"}},
                {"id": "three", "type": "http.request", "config": {"url": f"{server.url}/three"}},
            ],
            [("t", "one"), ("one", "two"), ("two", "three")],
        )
        worker = start_worker(**FAST_LIVENESS)
        execution_id = run(api, flow)
        recoveries = []
        for path in ("/one", "/two", "/three"):
            wait_for(lambda path=path: server.received("GET", path), 30, message=f"{path} to be called")
            worker.kill()
            killed = time.monotonic()
            worker = start_worker(**FAST_LIVENESS)
            wait_for(lambda: sweep_executions()["recovered"], 30, interval=0.5, message="the sweeper to recover it")
            node = path[1:]
            wait_for(
                lambda node=node: any(e["node_id"] == node and e["status"] == "succeeded" for e in _log(execution_id)),
                30,
                message=f"{path} to complete after recovery",
            )
            recoveries.append(time.monotonic() - killed)
        execution = wait_status(execution_id, "succeeded", "failed")

    assert execution.status == "succeeded", execution.error
    assert execution.recoveries == 3
    assert completed_steps(execution) == Counter({"one": 1, "two": 1, "three": 1})
    print(f"\nkill -9 x3: recovered in {', '.join(f'{r:.1f} s' for r in recoveries)}")


def _log(execution_id: int) -> list[dict]:
    return FlowExecution.objects.values_list("execution_log", flat=True).get(pk=execution_id)


def test_kill_9_during_a_side_effect_never_repeats_it(start_worker, api, user, settings):
    settings.EXECUTION_HEARTBEAT_TIMEOUT = 3
    with FakeHTTPServer(lambda request: Reply(200, {}, delay=2)) as server:
        flow = make_flow(
            user,
            [
                {"id": "send", "type": "http.request", "config": {"url": f"{server.url}/send", "method": "POST"}},
                {"id": "after", "type": "logic.set", "config": {"values": {"x": 1}}},
            ],
            [("t", "send"), ("send", "after")],
        )
        worker = start_worker(**FAST_LIVENESS)
        execution_id = run(api, flow)
        wait_for(lambda: server.received("POST", "/send"), 30, message="the POST to start")
        worker.kill()
        start_worker(**FAST_LIVENESS)
        wait_for(lambda: sweep_executions()["recovered"], 30, interval=0.5)
        execution = wait_status(execution_id, "succeeded", "failed")
        time.sleep(1)
        posts = len(server.received("POST", "/send"))

    assert posts == 1  # never repeated
    assert execution.status == "failed"
    assert execution.execution_log[-1]["decision"].startswith("not repeated")
    assert "after" not in completed_steps(execution)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A Redis of our own (no persistence, like production's) that a drill may kill."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, message="redis-server to start")

    def _answers(self) -> bool:
        import redis

        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis():
    server = RedisServer()
    server.start()
    yield server
    server.kill()


def in_own_process(code: str, *args: str, **env: str) -> str:
    """Run Python code in a fresh Inflow process; its output joins the log scan (conftest.py)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=BASE_DIR,
        env=worker_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    log = Path(tempfile.mkstemp(prefix="inflow-drill-", suffix=".log")[1])
    log.write_text(result.stdout + result.stderr)
    _WORKER_LOGS.append(log)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def sweep_through(broker_url: str) -> str:
    """Run the sweeper as beat would: in its own process, on the given broker."""
    code = "import django; django.setup(); from executions.tasks import sweep_executions; print(sweep_executions())"
    return in_own_process(code, REDIS_URL=broker_url, EXECUTION_PENDING_REQUEUE_SECONDS="1")


def test_a_redis_restart_under_load_loses_nothing(start_worker, own_redis, user):
    from config.celery import app

    with FakeHTTPServer(lambda request: Reply(200, {}, delay=0.05)) as server:
        flow = make_flow(
            user,
            [
                {"id": "call", "type": "http.request", "config": {"url": f"{server.url}/work"}},
                {"id": "done", "type": "logic.set", "config": {"values": {"ok": True}}},
            ],
            [("t", "call"), ("call", "done")],
        )
        start_worker(REDIS_URL=own_redis.url)
        executions = FlowExecution.objects.bulk_create(
            FlowExecution(flow=flow, user=user, trigger_data={"n": n}, enqueued_at=None) for n in range(120)
        )
        with app.connection_for_write(own_redis.url) as broker:
            for execution in executions:
                run_execution.apply_async((execution.pk,), connection=broker)

        wait_for(lambda: FlowExecution.objects.filter(status="succeeded").count() >= 10, 60, message="load to start")
        own_redis.kill()  # the queue and the unacked messages vanish with it
        restarted = time.monotonic()
        time.sleep(1)
        own_redis.start()
        lost = FlowExecution.objects.exclude(status="succeeded").count()

        def all_succeeded() -> bool:
            if FlowExecution.objects.filter(status="succeeded").count() == 120:
                return True
            sweep_through(own_redis.url)  # as beat does every few seconds
            return False

        time.sleep(1.1)
        wait_for(all_succeeded, 120, interval=2, message="every run to succeed after the restart")
        recovery = time.monotonic() - restarted

    for execution in FlowExecution.objects.all():
        assert completed_steps(execution) == Counter({"call": 1, "done": 1}), execution.execution_log
    assert len(server.received("GET", "/work")) >= 120
    print(f"\nRedis restart with {lost} runs not yet done: all 120 succeeded {recovery:.1f} s after the restart")


def request_through(broker_url: str, method: str, path: str, body: dict, headers: dict[str, str]) -> int:
    """One request to Inflow in a process of its own whose Redis is `broker_url`, as a web process would make it."""
    code = (
        "import json, sys; import django; django.setup(); from django.test import Client; "
        "method, path, body, headers = json.loads(sys.argv[1]); "
        "response = getattr(Client(raise_request_exception=False), method)("
        "path, json.dumps(body), content_type='application/json', headers=headers); "
        "print(response.status_code)"
    )
    argument = json.dumps([method, path, body, headers])
    return int(in_own_process(code, argument, REDIS_URL=broker_url, ALLOWED_HOSTS="testserver").splitlines()[-1])


def test_runs_asked_for_while_redis_is_down_are_accepted_and_run_once(start_worker, own_redis, user):
    """Redis down, clients keep calling: each accepted run is in PostgreSQL and runs once Redis is back."""
    from accounts.models import ApiKey

    with FakeHTTPServer(lambda request: Reply(200, {})) as server:
        flow = make_flow(
            user,
            [{"id": "call", "type": "http.request", "config": {"url": f"{server.url}/work", "method": "POST"}}],
            [("t", "call")],
        )
        hook = Flow.objects.create(
            user=user,
            name="hook",
            status=Flow.Status.ACTIVE,
            flow_data={"nodes": [{"id": "t", "type": "trigger.webhook", "config": {}}], "edges": []},
        )
        auth = {"Authorization": f"Token {ApiKey.issue(user)[1]}"}
        start_worker(REDIS_URL=own_redis.url)
        own_redis.kill()
        down = time.monotonic()
        answers = [
            request_through(own_redis.url, "post", f"/api/v1/flows/{flow.pk}/run/", {"trigger_data": {"n": n}}, auth)
            for n in range(3)
        ]
        answers.append(
            request_through(own_redis.url, "post", f"/webhooks/flows/{hook.pk}/{hook.webhook_secret}/", {}, {})
        )
        own_redis.start()

        def all_done() -> bool:
            if not FlowExecution.objects.filter(status__in=FlowExecution.ACTIVE_STATUSES).exists():
                return True
            sweep_through(own_redis.url)  # as beat does every few seconds
            return False

        wait_for(all_done, 120, interval=2, message="the runs accepted during the outage to finish")
        recovery = time.monotonic() - down

    # Never a 500. A 202 is a stored run the sweeper enqueues; the webhook may instead say 503
    # (its rate limit lives in Redis), but only before it stored anything, so a retry is safe.
    assert answers[:3] == [202, 202, 202]
    assert answers[3] in (202, 503)
    assert FlowExecution.objects.filter(flow=flow, status="succeeded").count() == 3
    assert FlowExecution.objects.filter(flow=hook, status="succeeded").count() == (answers[3] == 202)
    assert FlowExecution.objects.exclude(status="succeeded").count() == 0
    assert len(server.received("POST", "/work")) == 3
    print(f"\nruns asked for while Redis was down ({answers}): all done {recovery:.1f} s after it went down")


def test_a_dropped_database_connection_during_a_step(worker, api, user):
    """The connection dies while a side-effecting call is in flight: the step's result is
    still saved (reconnect and retry), and the call is made once."""
    with FakeHTTPServer(lambda request: Reply(200, {"ok": True}, delay=2)) as server:
        flow = make_flow(
            user,
            [
                {"id": "post", "type": "http.request", "config": {"url": f"{server.url}/post", "method": "POST"}},
                {"id": "after", "type": "logic.set", "config": {"values": {"x": 1}}},
                {"id": "last", "type": "logic.set", "config": {"values": {"y": 2}}},
            ],
            [("t", "post"), ("post", "after"), ("after", "last")],
        )
        execution_id = run(api, flow)
        wait_for(lambda: server.received("POST", "/post"), 30, message="the call to start")
        dropped = time.monotonic()
        db = connection.settings_dict
        with psycopg.connect(
            host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True
        ) as admin:
            terminated = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
                [connection.connection.info.backend_pid if connection.connection else 0],
            ).fetchone()[0]
        execution = wait_status(execution_id, "succeeded", "failed", timeout=30)
        recovery = time.monotonic() - dropped

    assert terminated >= 1
    assert execution.status == "succeeded", execution.error
    assert execution.recoveries == 0  # no sweeper needed: the worker reconnected
    assert completed_steps(execution) == Counter({"post": 1, "after": 1, "last": 1})
    assert len(server.received("POST", "/post")) == 1
    print(f"\ndropped database connections ({terminated}) during a call: run succeeded {recovery:.1f} s later")
