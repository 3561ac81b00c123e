"""Benchmark: signed Meta webhook deliveries accepted per second by gunicorn as in production.

Setup (all torn down at the end):
- a scratch database (bench_inflow_meta, migrated) and Redis DB 12 of its own;
- gunicorn started with docker/gunicorn.conf.py (gthread, WEB_CONCURRENCY=2 workers x 4
  threads for 2 cores, access log on), DEBUG off, random secrets, SECURE_SSL_REDIRECT on
  and honoured through X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER=true), on 127.0.0.1.
  GUNICORN_MAX_REQUESTS is set by --max-requests: the image's default of 1000 recycles
  each worker every ~2 s at these rates, and a worker's restart (re-importing Django)
  then dominates the latency; pass --max-requests 1000 to see that;
- one user with a connected Instagram account and an active `instagram.comment` flow.

Load: wrk (installed with apt-get when missing) on loopback, a fixed number of connections,
bounded in time. Each request is a distinct, correctly signed comment delivery. The same
gunicorn also serves `/bench/trivial/` (bench/support/urls.py: the full middleware stack and
a view that reads the body and answers JSON) as the baseline; both are measured in the same
run with the same bodies. No Celery worker runs, so the figures are the web tier's: verify,
parse, INSERT, COMMIT, publish the Celery nudge to Redis, answer. At the end the script
checks that every accepted delivery is a row in PostgreSQL.

Run: .venv/bin/python bench/webhooks.py [--seconds 15] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support.stack import (  # noqa: E402 (needs ROOT on sys.path)
    comment_delivery,
    create_database,
    drop_database,
    free_port,
    group_cpu_seconds,
    production_env,
    sign,
    start_gunicorn,
    stop,
)

BENCH_DB = "bench_inflow_meta"
REDIS_URL = "redis://127.0.0.1:6379/12"
ACCOUNT_ID = "17841400000000777"
APP_SECRET = secrets.token_urlsafe(32)

# Production-like: DEBUG off, fresh random secrets, HTTPS enforced behind a proxy.
ENV = production_env(database=BENCH_DB, redis_url=REDIS_URL, app_secret=APP_SECRET)
os.environ.update(ENV)

WRK_SCRIPT = r"""
local requests = {}
local index = 0

function init(args)
  local path, file = args[1], args[2]
  for line in io.lines(file) do
    local signature, body = line:match("^([^\t]+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Host"] = "127.0.0.1",
      ["Content-Type"] = "application/json",
      ["X-Forwarded-Proto"] = "https",
      ["X-Hub-Signature-256"] = signature,
    }, body)
  end
  index = math.random(#requests)  -- each thread starts elsewhere in the list
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get) ...", flush=True)
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if os.geteuid() != 0:
        install = ["sudo", "-n", *install]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run([*install[:-4], "update", "-qq"], capture_output=True)
        subprocess.run(install, capture_output=True, check=True)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def setup_database() -> None:
    create_database(BENCH_DB)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from flows.models import Flow
    from tokens.models import ApiToken

    user = User.objects.create_user("bench@example.com", secrets.token_urlsafe(16), name="Bench")
    token = ApiToken(user=user, provider="instagram", account_id=ACCOUNT_ID)
    token.set_token("IGQVJ-bench-" + secrets.token_urlsafe(40))
    token.save()
    flow = Flow(
        user=user,
        name="price replies",
        status=Flow.Status.ACTIVE,
        flow_data={
            "nodes": [
                {"id": "t", "type": "instagram.comment", "config": {"keywords": ["price"]}},
                {"id": "a", "type": "instagram.private_reply", "config": {"text": "Hi {{ trigger.username }}!"}},
            ],
            "edges": [{"source": "t", "target": "a"}],
        },
    )
    assert flow.graph_errors(complete=True) == []
    flow.save()
    from django.db import connections

    connections.close_all()


def write_bodies(path: Path, count: int) -> None:
    """Distinct signed comment deliveries, one `signature<TAB>body` per line."""
    now = int(time.time())
    with path.open("w") as out:
        for n in range(count):
            body = comment_delivery(
                account_id=ACCOUNT_ID,
                comment_id=f"179000{n:09d}",
                from_id=f"55500{n:06d}",
                username=f"user{n}",
                text="What's the price?" if n % 2 else "Love it",
                time_s=now,
            )
            out.write(f"{sign(body, APP_SECRET)}\t{body.decode()}\n")


def run_wrk(wrk: str, script: Path, bodies: Path, port: int, path: str, seconds: int, connections: int) -> dict:
    result = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            path,
            str(bodies),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    stats = json.loads(line.removeprefix("RESULT "))
    stats["rate"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["accepted"] = stats["requests"] - stats["non_2xx"]
    return stats


def measure(gunicorn: subprocess.Popen, *args) -> dict:
    """A wrk run, plus the web tier's CPU cost per request (less sensitive to a busy host)."""
    cpu_before = group_cpu_seconds(gunicorn.pid)
    stats = run_wrk(*args)
    stats["cpu_ms"] = (group_cpu_seconds(gunicorn.pid) - cpu_before) * 1000 / max(1, stats["requests"])
    return stats


def report(name: str, stats: dict) -> None:
    print(
        f"{name:<22} {stats['rate']:8.0f} req/s   p50 {stats['p50_us'] / 1000:6.1f} ms   "
        f"p95 {stats['p95_us'] / 1000:6.1f} ms   p99 {stats['p99_us'] / 1000:6.1f} ms   "
        f"gunicorn CPU {stats['cpu_ms']:.2f} ms/req   non-2xx {stats['non_2xx']}   "
        f"socket errors {stats['socket_errors']}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections")
    parser.add_argument("--bodies", type=int, default=20000, help="distinct signed deliveries to cycle through")
    parser.add_argument("--max-requests", type=int, default=50000, help="GUNICORN_MAX_REQUESTS (0: never recycle)")
    args = parser.parse_args()
    ENV["GUNICORN_MAX_REQUESTS"] = str(args.max_requests)

    wrk = ensure_wrk()
    import redis

    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()  # Redis DB 12 belongs to this benchmark
    setup_database()
    workdir = Path(tempfile.mkdtemp(prefix="inflow-bench-"))
    script, bodies = workdir / "signed.lua", workdir / "bodies.tsv"
    script.write_text(WRK_SCRIPT)
    write_bodies(bodies, args.bodies)
    port = free_port()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the readiness probe's request lines
    gunicorn = start_gunicorn(ENV, port, workdir / "gunicorn.log")
    try:
        print(
            f"gunicorn (gthread, {ENV['WEB_CONCURRENCY']} workers x {ENV['GUNICORN_THREADS']} threads, "
            f"max_requests {args.max_requests}) on 127.0.0.1:{port}, {os.cpu_count()} CPUs, "
            f"wrk 1 thread x {args.connections} connections, {args.seconds} s per run",
            flush=True,
        )
        run_wrk(wrk, script, bodies, port, "/bench/trivial/", 3, args.connections)  # warm-up
        run_wrk(wrk, script, bodies, port, "/webhooks/meta/", 3, args.connections)
        baseline = measure(gunicorn, wrk, script, bodies, port, "/bench/trivial/", args.seconds, args.connections)
        report("trivial Django view", baseline)
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM meta_webhook_deliveries")
            before = cursor.fetchone()[0]
        webhooks = measure(gunicorn, wrk, script, bodies, port, "/webhooks/meta/", args.seconds, args.connections)
        report("signed Meta webhooks", webhooks)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM meta_webhook_deliveries")
            stored = cursor.fetchone()[0] - before
        print(
            f"ratio webhook/trivial: {webhooks['rate'] / baseline['rate']:.2f} of the throughput, "
            f"{webhooks['cpu_ms'] / baseline['cpu_ms']:.2f}x the CPU per request; "
            f"load average now {os.getloadavg()[0]:.2f} (other processes share these cores)"
        )
        print(f"durability: {webhooks['accepted']} deliveries answered 200, {stored} rows in PostgreSQL")
        print(f"Celery nudges waiting in Redis: {broker.llen('inflow')}")
        goal = webhooks["rate"] >= 500 and webhooks["p95_us"] < 50_000
        print(f"goal (>= 500/s, p95 < 50 ms): {'met' if goal else 'NOT met'}")
        if stored < webhooks["accepted"]:
            sys.exit("an accepted delivery is missing from the database")
    finally:
        stop(gunicorn)
        from django.db import connections

        connections.close_all()
        drop_database(BENCH_DB)
        broker.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
