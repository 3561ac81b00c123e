"""Benchmark: flow executions per second through a real Celery worker.

Measured in one run, on one machine, through the same worker, queue and Celery settings
(acks_late, prefetch 1, JSON):
  1. the bare rate of a no-op task (Celery's built-in `celery.accumulate`, results ignored);
  2. end-to-end executions of a 3-step flow (condition -> set -> set) via run_execution,
     from enqueue until every run is `succeeded` in PostgreSQL;
  3. per-step overhead: the engine alone (in-memory journal) and with persistence
     (the real DatabaseJournal), as p50/p95 per step.

Uses its own scratch database (bench_inflow_engine) and Redis DB 9; cleans up after itself.
Measurements 1 and 2 alternate for --rounds rounds; the figures are the median round's.
Run: .venv/bin/python bench/engine.py [--executions 2000] [--noops 4000] [--concurrency 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support.stack import create_database, drop_database, percentile, production_env  # noqa: E402 (needs ROOT on sys.path)

BENCH_DB = "bench_inflow_engine"
REDIS_URL = "redis://127.0.0.1:6379/9"
# Production settings (DEBUG off: with it on, Django records every query, ~12% of a run's
# cost); the worker inherits them.
os.environ.update(
    production_env(database=BENCH_DB, redis_url=REDIS_URL, app_secret=secrets.token_urlsafe(32))
    | {"DJANGO_SETTINGS_MODULE": "config.settings", "LOG_LEVEL": "WARNING"}
)

THREE_STEPS = {
    "nodes": [
        {"id": "t", "type": "trigger.manual", "config": {}},
        {
            "id": "c",
            "type": "logic.condition",
            "config": {"left": "{{ trigger.text }}", "op": "contains", "right": "vip"},
        },
        {"id": "tag", "type": "logic.set", "config": {"values": {"tier": "vip", "who": "{{ trigger.user }}"}}},
        {"id": "note", "type": "logic.set", "config": {"values": {"note": "{{ vars.tier }} for {{ vars.who }}"}}},
    ],
    "edges": [
        {"source": "t", "target": "c"},
        {"source": "c", "target": "tag", "port": "true"},
        {"source": "tag", "target": "note"},
    ],
}


def start_worker(concurrency: int) -> subprocess.Popen:
    log = open(ROOT / "bench" / ".engine-worker.log", "wb")  # noqa: SIM115 (lives as long as the worker)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
            "-n",
            "bench@%h",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5)
        if replies:
            return proc
    raise SystemExit("the worker did not start; see bench/.engine-worker.log")


def queue_drained(redis_client) -> bool:
    return redis_client.llen("inflow") == 0 and redis_client.hlen("unacked") == 0


def measure_noops(count: int, redis_client) -> float:
    from config.celery import app

    started = time.perf_counter()
    for index in range(count):
        app.send_task("celery.accumulate", args=(index,), ignore_result=True, queue="inflow")
    while not queue_drained(redis_client):
        time.sleep(0.01)
    return count / (time.perf_counter() - started)


def measure_executions(count: int, flow) -> float:
    from executions.models import FlowExecution
    from executions.tasks import enqueue
    from flows.models import FlowVersion

    # Runs are created up front, so the rate is the worker's alone. Each refers to the flow's
    # version, as start_execution makes them, so the claim reads the graph the way it does
    # in production.
    version_id = FlowVersion.objects.id_for(flow.pk, flow.flow_data)
    executions = FlowExecution.objects.bulk_create(
        FlowExecution(
            flow=flow,
            flow_version_id=version_id,
            user_id=flow.user_id,
            trigger_data={"text": "vip please", "user": f"u{i}"},
        )
        for i in range(count)
    )
    ids = [execution.pk for execution in executions]
    started = time.perf_counter()
    for execution_id in ids:
        enqueue(execution_id)
    # A cheap poll (an indexed range on the ids we just made), so the benchmark's own
    # queries stay out of the way of the worker.
    done = FlowExecution.objects.filter(pk__gte=ids[0], pk__lte=ids[-1], status__in=FlowExecution.FINISHED_STATUSES)
    while done.count() < count:
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    failed = FlowExecution.objects.filter(pk__in=ids).exclude(status="succeeded").count()
    if failed:
        raise SystemExit(f"{failed} executions did not succeed")
    return count / elapsed


def measure_step_overhead(flow, runs: int) -> tuple[list[float], list[float]]:
    """Per-step milliseconds: engine alone (memory journal), and with DatabaseJournal."""
    from executions import runner
    from executions.engine import Engine, MemoryJournal
    from executions.models import FlowExecution
    from flows.models import FlowVersion

    memory: list[float] = []
    for index in range(runs):
        engine = Engine(THREE_STEPS)
        state = engine.initial_state("t", {"text": "vip", "user": f"u{index}"})
        started = time.perf_counter()
        engine.run(state, MemoryJournal())
        memory.append((time.perf_counter() - started) * 1000 / state["steps"])

    version_id = FlowVersion.objects.id_for(flow.pk, flow.flow_data)
    executions = FlowExecution.objects.bulk_create(
        FlowExecution(
            flow=flow, flow_version_id=version_id, user_id=flow.user_id, trigger_data={"text": "vip", "user": "x"}
        )
        for _ in range(runs)
    )
    persisted: list[float] = []
    for execution in executions:
        started = time.perf_counter()
        runner.run(execution.pk)  # claim + 3 persisted steps + finish
        persisted.append((time.perf_counter() - started) * 1000 / 3)
    return memory, persisted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=2000)
    parser.add_argument("--noops", type=int, default=4000)
    # The deployment default (WORKER_CONCURRENCY, docker-compose.yml): two processes per core,
    # because a flow run spends part of its time waiting on PostgreSQL.
    parser.add_argument("--concurrency", type=int, default=4)
    # The no-op rate alone swings by 20% between runs on a shared 2-core machine: alternate
    # the two measurements and report the median of the per-round ratios.
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    create_database(BENCH_DB)
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    redis_client = redis.Redis.from_url(REDIS_URL)
    redis_client.flushdb()

    from accounts.models import User
    from flows.models import Flow

    user = User.objects.create_user("bench@example.com", "bench-password-123", name="Bench")
    flow = Flow.objects.create(user=user, name="3 steps", flow_data=THREE_STEPS, status="active")
    assert flow.graph_errors(complete=True) == []

    worker = start_worker(args.concurrency)
    try:
        measure_noops(200, redis_client)  # warm up the pool processes
        measure_executions(100, flow)
        rounds = []
        for _ in range(args.rounds):
            noop_rate = measure_noops(args.noops, redis_client)
            rounds.append((noop_rate, measure_executions(args.executions, flow)))
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=30)
    memory, persisted = measure_step_overhead(flow, runs=500)

    print(f"machine: {os.cpu_count()} cores; worker: prefork x{args.concurrency}")
    for number, (noop_rate, execution_rate) in enumerate(rounds, 1):
        print(
            f"round {number}: no-op {noop_rate:6.0f} /s ({args.noops} tasks), 3-step executions "
            f"{execution_rate:5.0f} /s ({args.executions} runs, enqueue to succeeded), "
            f"ratio {execution_rate / noop_rate:.2f}"
        )
    middle = sorted(rounds, key=lambda pair: pair[1] / pair[0])[len(rounds) // 2]
    print(f"celery no-op tasks:        {middle[0]:8.0f} /s  (median round)")
    print(f"3-step flow executions:    {middle[1]:8.0f} /s  (median round)")
    print(f"ratio executions / no-op:  {middle[1] / middle[0]:8.2f}  (median of {len(rounds)} rounds)")
    print(
        f"per-step engine overhead:  p50 {percentile(memory, 0.5):.3f} ms, p95 {percentile(memory, 0.95):.3f} ms "
        "(engine only, in-memory journal)"
    )
    print(
        f"per-step with persistence: p50 {percentile(persisted, 0.5):.3f} ms, p95 {percentile(persisted, 0.95):.3f} ms "
        f"(claim + lease-checked UPDATE per step + finish; mean {statistics.mean(persisted):.3f} ms)"
    )
    from django.db import connections

    connections.close_all()
    drop_database(BENCH_DB)


if __name__ == "__main__":
    main()
