"""Benchmark: a mixed API / webhook / execution workload against the production-like stack.

Setup (all torn down at the end; bench/support/stack.py):
- a scratch database (bench_inflow_load, migrated, node types synced) and Redis DB 7;
- gunicorn with docker/gunicorn.conf.py as in bench/webhooks.py: 2 workers x 4 threads,
  DEBUG off, random secrets, HTTPS enforced and honoured through X-Forwarded-Proto, which
  every load client sends; on 127.0.0.1 only;
- one real Celery worker (`celery -A config worker`, 2 processes) so that runs started by
  the API and by webhooks really execute. No beat: the sweeper would hide a lost message,
  so every execution has to finish from its own enqueue;
- seed data: 4 users, each with an API key, a connected Instagram account and 60
  flows (an active `instagram.comment` flow on "price" and one on "refund", a paused one on
  "price", an active `trigger.webhook` flow, 3 active and 3 draft manual flows, 50 drafts,
  every tenth archived), 1,000 finished executions of history and 5 knowledge documents
  indexed through the real ingestion path by the worker (the load waits until they are
  ready). Every flow runs logic steps only (condition, set), so no run needs the network.

Load: locust, headless, one process (bench/support/locustfile.py), FastHttpUser clients on
loopback, a fixed number of users with no think time (closed loop), bounded in time and in
request count. Phases, in order:
1. warm-up (reads only);
2. baseline: the DRF flow list `/api/v1/flows/` against `/bench/flows/`, the same list
   written with Django only (bench/support/urls.py: same key lookup, queries, page and JSON
   bytes, checked before measuring), then the same for the detail; each side twice in the
   order DRF, plain, plain, DRF so that drift on this shared machine cancels out;
3. the mixed workload: flow list and detail, POST / PATCH / DELETE flows, manual runs, the
   executions list and detail, signed Meta comment deliveries with new comment ids (each
   matches exactly one active flow: one execution), knowledge search, node types, tokens,
   /healthz.
Then it waits (up to --grace seconds) until every execution has finished and every
delivery is processed, and checks that each accepted run and delivery made exactly one
execution and that all of them `succeeded`.

Exit status 1 on a 5xx, a connection error, any response other than the one promised (a
4xx here is a bug too), or an execution left pending, running or failed.

Run: .venv/bin/python bench/load.py [--seconds 45] [--users 8] [--baseline-seconds 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support.corpus import SENTENCES  # noqa: E402
from bench.support.graphs import comment_graph, draft_graph, manual_graph, webhook_graph  # noqa: E402
from bench.support.stack import (  # noqa: E402
    BIN,
    PROXY_HEADERS,
    create_database,
    drop_database,
    free_port,
    group_cpu_seconds,
    load_average,
    machine_cpu_seconds,
    percentile,
    process_cpu_seconds,
    production_env,
    start_gunicorn,
    start_worker,
    stop,
)

BENCH_DB = "bench_inflow_load"
REDIS_URL = "redis://127.0.0.1:6379/7"
APP_SECRET = secrets.token_urlsafe(32)
ENV = production_env(database=BENCH_DB, redis_url=REDIS_URL, app_secret=APP_SECRET)
os.environ.update(ENV)
LOCUSTFILE = ROOT / "bench" / "support" / "locustfile.py"

ACCOUNTS = 4
DRAFTS_PER_ACCOUNT = 50
HISTORY_PER_ACCOUNT = 1000
DOCUMENTS = ["Shipping", "Returns and refunds", "Payment", "Sizes", "Stores and service"]
SEARCH_TERMS = [
    "how long does delivery take",
    "can I return my jeans",
    "do you take PayPal",
    "what size should I order",
    "when is the Berlin store open",
    "is there a warranty",
]
HISTORY_LOG = [
    {
        "node_id": "c",
        "type": "logic.condition",
        "status": "succeeded",
        "attempt": 1,
        "started_at": "2026-01-10T10:00:00Z",
        "finished_at": "2026-01-10T10:00:00Z",
        "duration_ms": 0.4,
        "output": {"result": False},
        "error": None,
        "port": "false",
    },
    {
        "node_id": "r",
        "type": "logic.set",
        "status": "succeeded",
        "attempt": 1,
        "started_at": "2026-01-10T10:00:00Z",
        "finished_at": "2026-01-10T10:00:00Z",
        "duration_ms": 0.3,
        "output": {"values": {"tier": "asked price", "who": "someone"}},
        "error": None,
    },
]


# --- Setup -----------------------------------------------------------------------------


def seed() -> dict:
    """Accounts, flows, history and documents; returns what the locust users need."""
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import ApiKey, User
    from executions.models import FlowExecution
    from flows.models import Flow
    from knowledge import services as knowledge
    from tokens.models import ApiToken

    call_command("migrate", verbosity=0)
    call_command("sync_node_types", verbosity=0)
    rng = random.Random(7)
    now = timezone.now()
    accounts = []
    for n in range(ACCOUNTS):
        user = User.objects.create_user(f"shop{n}@example.com", secrets.token_urlsafe(16), name=f"Shop {n}")
        _, key = ApiKey.issue(user, name="load")
        account_id = f"1784140{n:010d}"
        token = ApiToken(user=user, provider="instagram", account_id=account_id)
        token.set_token("IGQVJ-load-" + secrets.token_urlsafe(40))
        token.save()
        specs = [
            ("price replies", Flow.Status.ACTIVE, comment_graph("price")),
            ("refund replies", Flow.Status.ACTIVE, comment_graph("refund")),
            ("old price replies", Flow.Status.PAUSED, comment_graph("price")),
            ("order webhook", Flow.Status.ACTIVE, webhook_graph()),
            *[(f"manual {i}", Flow.Status.ACTIVE, manual_graph(f"m{i}")) for i in range(3)],
            *[(f"manual draft {i}", Flow.Status.DRAFT, manual_graph(f"d{i}")) for i in range(3)],
            *[
                (f"idea {i}", Flow.Status.ARCHIVED if i % 10 == 9 else Flow.Status.DRAFT, draft_graph(i))
                for i in range(DRAFTS_PER_ACCOUNT)
            ],
        ]
        flows = []
        for name, status, graph in specs:
            flow = Flow(user=user, name=name, status=status, flow_data=graph)
            flow.created_at = now - timedelta(minutes=rng.randrange(60 * 24 * 30))
            errors = flow.graph_errors(complete=status == Flow.Status.ACTIVE)
            assert not [e for e in errors if not e.incomplete], (name, errors)
            flows.append(flow)
        flows = Flow.objects.bulk_create(flows)
        runnable = [f for f in flows if f.trigger_type in ("trigger.manual", "instagram.comment")]
        history = []
        for i in range(HISTORY_PER_ACCOUNT):
            flow = rng.choice(runnable)
            started = now - timedelta(seconds=rng.randrange(7 * 24 * 3600))
            history.append(
                FlowExecution(
                    flow=flow,
                    user=user,
                    status=FlowExecution.Status.SUCCEEDED,
                    trigger_type=flow.trigger_type,
                    trigger_data={"text": f"What's the price? #{i}", "username": f"fan{i}", "comment_id": f"17{i:09d}"},
                    execution_log=HISTORY_LOG,
                    started_at=started,
                    completed_at=started + timedelta(milliseconds=30),
                )
            )
        FlowExecution.objects.bulk_create(history, batch_size=1000)
        for d, title in enumerate(DOCUMENTS):
            sentences = [SENTENCES[(d * 2 + i) % len(SENTENCES)] for i in range(24)]
            knowledge.create_document(user=user, title=title, content=" ".join(sentences))  # queues ingestion
        accounts.append(
            {
                "key": key,
                "account_id": account_id,
                "flow_ids": [f.pk for f in flows],
                # Complete manual flows (draft or active): a run needs a complete graph.
                "manual_flow_ids": [f.pk for f in flows if f.name.startswith("manual")],
            }
        )
    return {"accounts": accounts, "app_secret": APP_SECRET, "run_tag": f"179{secrets.randbelow(10**5):05d}"}


def wait_for_documents(timeout: float) -> tuple[int, int]:
    """Wait until no document is queued or indexing; returns (ready, total)."""
    from knowledge.models import Document

    deadline = time.monotonic() + timeout
    busy = (Document.Status.QUEUED, Document.Status.INDEXING)
    while Document.objects.filter(status__in=busy).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    return Document.objects.filter(status=Document.Status.READY).count(), Document.objects.count()


def check_baseline_equivalence(base_url: str, config: dict) -> None:
    """The plain views must answer what DRF answers, or the comparison means nothing."""
    import httpx

    account = config["accounts"][0]
    webhook_flow = account["flow_ids"][3]  # "order webhook": its webhook_url is built from the request
    headers = {**PROXY_HEADERS, "Authorization": f"Token {account['key']}"}
    with httpx.Client(base_url=base_url, headers=headers) as client:
        for drf, plain in (
            ("/api/v1/flows/", "/bench/flows/"),
            (f"/api/v1/flows/{webhook_flow}/", f"/bench/flows/{webhook_flow}/"),
        ):
            a, b = client.get(drf), client.get(plain)
            if not a.status_code == b.status_code == 200:
                sys.exit(f"{drf} answered {a.status_code}, {plain} {b.status_code}")
            left, right = a.json(), b.json()
            for links in (left, right):  # the pages link to their own paths
                links.pop("next", None)
                links.pop("previous", None)
            if left != right:
                sys.exit(f"{plain} does not answer what {drf} answers; the baseline would be unfair")
            if len(a.content) - len(b.content) not in range(-40, 41):
                sys.exit(f"{plain} and {drf} differ in size: {len(a.content)} vs {len(b.content)} bytes")


# --- Load ------------------------------------------------------------------------------


def run_locust(
    user_class: str,
    *,
    base_url: str,
    config_path: Path,
    workdir: Path,
    seconds: int,
    users: int,
    spawn_rate: float,
    max_requests: int,
    think_ms: int,
) -> dict:
    """One headless locust run of one user class; returns its recorded requests."""
    results = workdir / f"{user_class}-{time.monotonic_ns()}.json"
    env = {
        **os.environ,
        "INFLOW_LOAD_CONFIG": str(config_path),
        "INFLOW_LOAD_RESULTS": str(results),
        "INFLOW_LOAD_MAX_REQUESTS": str(max_requests),
        "INFLOW_LOAD_THINK_MS": str(think_ms),
    }
    command = [
        str(BIN / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        base_url,
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        f"{seconds}s",
        "--stop-timeout",
        "10",  # let in-flight requests finish: every accepted run is then counted
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
        user_class,
    ]
    with (workdir / "locust.log").open("ab") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        cpu = 0.0
        try:
            while proc.poll() is None:
                cpu = max(cpu, group_cpu_seconds(proc.pid))  # gone once it exits
                time.sleep(0.5)
        finally:
            stop(proc)
    if not results.exists():
        sys.exit(f"locust wrote no results; see {workdir / 'locust.log'}")
    data = json.loads(results.read_text())
    data["locust_cpu"] = cpu
    return data


def summarize(runs: list[dict]) -> dict[str, dict]:
    """Per request name: counts over every run, rate and latencies over the measured windows.

    A run's window starts when all its users have spawned and ends when it stopped.
    """
    stats: dict[str, dict] = {}
    for run in runs:  # a run cut short by --max-requests may stop before all users spawned
        run["spawned_at"] = run["spawned_at"] or min((r[1] for r in run["records"]), default=run["stopped_at"])
    window_seconds = sum(run["stopped_at"] - run["spawned_at"] for run in runs)
    for run in runs:
        for name, start, ms, status, ok in run["records"]:
            entry = stats.setdefault(name, {"all": 0, "failures": 0, "5xx": 0, "errors": 0, "ms": [], "status": {}})
            entry["all"] += 1
            entry["failures"] += not ok
            entry["5xx"] += status >= 500
            entry["errors"] += status == 0
            entry["status"][status] = entry["status"].get(status, 0) + 1
            if run["spawned_at"] <= start <= run["stopped_at"]:
                entry["ms"].append(ms)
    for entry in stats.values():
        entry["rate"] = len(entry["ms"]) / window_seconds
        entry["p50"] = percentile(entry["ms"], 0.50)
        entry["p95"] = percentile(entry["ms"], 0.95)
    return stats


def overall(stats: dict[str, dict]) -> dict:
    ms = [value for entry in stats.values() for value in entry["ms"]]
    total = {key: sum(entry[key] for entry in stats.values()) for key in ("all", "failures", "5xx", "errors", "rate")}
    return {**total, "ms": ms, "p50": percentile(ms, 0.50), "p95": percentile(ms, 0.95)}


def print_table(stats: dict[str, dict]) -> None:
    print(f"{'endpoint':<34} {'requests':>9} {'failed':>7} {'5xx':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    rows = sorted(stats.items(), key=lambda item: -item[1]["all"])
    for name, entry in [*rows, ("overall", overall(stats))]:
        print(
            f"{name:<34} {entry['all']:>9} {entry['failures']:>7} {entry['5xx']:>5} {entry['rate']:>8.1f} "
            f"{entry['p50']:>8.1f} {entry['p95']:>8.1f}"
        )


def failures_of(runs: list[dict]) -> list[str]:
    messages = []
    for run in runs:
        for name, errors in run["errors"].items():
            messages.extend(f"{name}: {error}" for error in errors)
    return messages


# --- Executions ------------------------------------------------------------------------


def wait_for_executions(after_id: int, grace: float) -> float:
    """Seconds until no new execution is active and no delivery pending (or grace ran out)."""
    from executions.models import FlowExecution
    from tokens.models import MetaWebhookDelivery

    started = time.monotonic()
    while time.monotonic() - started < grace:
        active = FlowExecution.objects.filter(pk__gt=after_id, status__in=FlowExecution.ACTIVE_STATUSES).exists()
        if not active and not MetaWebhookDelivery.objects.filter(processed_at__isnull=True).exists():
            break
        time.sleep(0.5)
    return time.monotonic() - started


def execution_outcomes(after_id: int) -> dict[tuple[str, str], int]:
    from django.db.models import Count

    from executions.models import FlowExecution

    rows = (
        FlowExecution.objects.filter(pk__gt=after_id)
        .values_list("trigger_type", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {(trigger, status): n for trigger, status, n in rows}


def database_backends() -> list[int]:
    """PostgreSQL server processes connected to the scratch database (gunicorn's, the worker's)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [pid for (pid,) in cursor.fetchall()]


# --- Main ------------------------------------------------------------------------------


def report_mix(mixed: dict, cpu: dict[str, float], elapsed: float, args: argparse.Namespace) -> dict[str, dict]:
    stats = summarize([mixed])
    window = mixed["stopped_at"] - mixed["spawned_at"]
    print(f"\nMixed workload: {window:.1f} s measured after {args.users} users spawned at {args.spawn_rate}/s")
    print_table(stats)
    requests = overall(stats)["all"]
    ours = sum(value for name, value in cpu.items() if name != "machine")
    print(
        f"CPU during the mix ({elapsed:.0f} s, {os.cpu_count() * elapsed:.0f} CPU-seconds here): gunicorn "
        f"{cpu['gunicorn']:.1f} s ({cpu['gunicorn'] * 1000 / max(1, requests):.2f} ms/request), Celery worker "
        f"{cpu['worker']:.1f} s, PostgreSQL backends {cpu['postgres']:.1f} s, locust {cpu['locust']:.1f} s; "
        f"the machine was busy {cpu['machine']:.1f} s, {max(0.0, cpu['machine'] - ours):.1f} s of it other "
        "processes (Redis, other engineers' work)"
    )
    return stats


def report_baseline(baseline: dict[str, list[dict]], args: argparse.Namespace) -> None:
    print(f"\nBaseline: DRF against plain Django, {args.users} users, 2 x {args.baseline_seconds} s each side")
    print(
        f"{'':<12} {'DRF req/s':>9} {'plain req/s':>11} {'ratio':>5}  {'DRF p95':>9} {'plain p95':>9} "
        f"{'ratio':>5}  {'DRF CPU/req':>11} {'plain CPU/req':>13} {'ratio':>5}"
    )
    for label, drf, plain in (("flow list", "DrfList", "PlainList"), ("flow detail", "DrfDetail", "PlainDetail")):
        a, b = overall(summarize(baseline[drf])), overall(summarize(baseline[plain]))
        cpu_a = sum(run["gunicorn_cpu"] for run in baseline[drf]) * 1000 / a["all"]
        cpu_b = sum(run["gunicorn_cpu"] for run in baseline[plain]) * 1000 / b["all"]
        print(
            f"{label:<12} {a['rate']:>9.1f} {b['rate']:>11.1f} {a['rate'] / b['rate']:>5.2f}  "
            f"{a['p95']:>7.1f}ms {b['p95']:>7.1f}ms {a['p95'] / b['p95']:>5.2f}  "
            f"{cpu_a:>9.2f}ms {cpu_b:>11.2f}ms {cpu_a / cpu_b:>5.2f}"
        )
    print(
        "(CPU/req: gunicorn's CPU time per request, which moves less than req/s with what else runs here. "
        "Both sides run the same SQL, so the difference is DRF's own work.)"
    )


def check_executions(stats: dict[str, dict], after_id: int, drain: float) -> list[str]:
    """Report the runs the mix started; problems if one is unfinished, failed, lost or doubled."""
    from tokens.models import MetaWebhookDelivery

    outcomes = execution_outcomes(after_id)
    by_status: dict[str, int] = {}
    for (_, status), n in outcomes.items():
        by_status[status] = by_status.get(status, 0) + n
    runs_accepted = stats.get("POST /api/v1/flows/{id}/run/", {}).get("status", {}).get(202, 0)
    webhooks_accepted = stats.get("POST /webhooks/meta/", {}).get("status", {}).get(200, 0)
    manual = sum(n for (trigger, _), n in outcomes.items() if trigger == "trigger.manual")
    comments = sum(n for (trigger, _), n in outcomes.items() if trigger == "instagram.comment")
    pending_deliveries = MetaWebhookDelivery.objects.filter(processed_at__isnull=True).count()
    failed_deliveries = MetaWebhookDelivery.objects.exclude(last_error="").count()
    print(
        f"\nExecutions: {sum(by_status.values())} started during the mix ({manual} for {runs_accepted} accepted "
        f"API runs, {comments} for {webhooks_accepted} accepted comment webhooks); {drain:.1f} s after the load "
        "they were: " + ", ".join(f"{status} {n}" for status, n in sorted(by_status.items()))
    )
    print(f"Meta deliveries: {pending_deliveries} unprocessed, {failed_deliveries} with an error")
    problems = []
    stuck = sum(by_status.get(status, 0) for status in ("pending", "running", "waiting"))
    if stuck or pending_deliveries:
        problems.append(f"{stuck} executions and {pending_deliveries} deliveries unfinished after the grace period")
    if by_status.get("failed") or by_status.get("cancelled") or failed_deliveries:
        problems.append(
            f"{by_status.get('failed', 0)} failed and {by_status.get('cancelled', 0)} cancelled runs, "
            f"{failed_deliveries} deliveries with an error"
        )
    if manual != runs_accepted or comments != webhooks_accepted:
        problems.append("accepted runs or deliveries and executions do not match one to one")
    return problems


def response_problems(runs: list[dict]) -> list[str]:
    every = summarize(runs)
    problems = []
    if any(entry["5xx"] for entry in every.values()):
        problems.append("5xx responses: " + ", ".join(f"{n} {e['5xx']}" for n, e in every.items() if e["5xx"]))
    if any(entry["errors"] for entry in every.values()):
        problems.append("connection errors or timeouts")
    if any(entry["failures"] for entry in every.values()):
        problems.append("unexpected responses:\n  " + "\n  ".join(failures_of(runs)[:20]))
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=45, help="length of the mixed workload")
    parser.add_argument("--users", type=int, default=8, help="concurrent locust users in every phase")
    parser.add_argument("--spawn-rate", type=float, default=4, help="users started per second (mixed workload)")
    parser.add_argument("--baseline-seconds", type=int, default=8, help="length of each baseline run (4 per endpoint)")
    parser.add_argument("--max-requests", type=int, default=100_000, help="upper bound of requests per phase")
    parser.add_argument("--think-ms", type=int, default=0, help="pause of each user between requests")
    parser.add_argument("--grace", type=int, default=120, help="seconds to wait for executions after the load")
    args = parser.parse_args()

    load_at_start = load_average()
    import redis

    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()  # Redis DB 7 belongs to this benchmark
    create_database(BENCH_DB)
    import django

    django.setup()
    from django.db import connections

    from executions.models import FlowExecution

    logging.getLogger("httpx").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="inflow-load-"))
    processes: list[subprocess.Popen] = []
    ok = False
    try:
        setup_started = time.monotonic()
        config = seed()
        worker = start_worker(ENV, workdir / "worker.log", name="load")
        processes.append(worker)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        gunicorn = start_gunicorn(ENV, port, workdir / "gunicorn.log")
        processes.append(gunicorn)
        ready, documents = wait_for_documents(timeout=120)
        config["search_terms"] = SEARCH_TERMS if ready == documents else []
        config_path = workdir / "config.json"
        config_path.write_text(json.dumps(config))
        check_baseline_equivalence(base_url, config)
        history_max_id = FlowExecution.objects.order_by("-id").values_list("id", flat=True).first() or 0
        connections.close_all()
        print(
            f"setup {time.monotonic() - setup_started:.0f} s: {ACCOUNTS} accounts, "
            f"{sum(len(a['flow_ids']) for a in config['accounts'])} flows, "
            f"{ACCOUNTS * HISTORY_PER_ACCOUNT} executions of history, {ready}/{documents} documents ready"
            + ("" if config["search_terms"] else " (knowledge search left out of the mix)"),
            flush=True,
        )
        print(
            f"gunicorn gthread {ENV['WEB_CONCURRENCY']} workers x {ENV['GUNICORN_THREADS']} threads on {base_url}; "
            f"Celery worker prefork x {ENV['WORKER_CONCURRENCY']}; locust 1 process, {args.users} users, "
            + (f"{args.think_ms} ms think time" if args.think_ms else "no think time"),
            flush=True,
        )

        def phase(user_class: str, seconds: int, spawn_rate: float) -> dict:
            """One locust run, with the CPU gunicorn and the Celery worker used meanwhile."""
            before = group_cpu_seconds(gunicorn.pid), group_cpu_seconds(worker.pid)
            run = run_locust(
                user_class,
                base_url=base_url,
                config_path=config_path,
                workdir=workdir,
                seconds=seconds,
                users=args.users,
                spawn_rate=spawn_rate,
                max_requests=args.max_requests,
                think_ms=args.think_ms,
            )
            run["gunicorn_cpu"] = group_cpu_seconds(gunicorn.pid) - before[0]
            run["worker_cpu"] = group_cpu_seconds(worker.pid) - before[1]
            return run

        all_runs = [phase("Warmup", 5, args.users)]
        baseline: dict[str, list[dict]] = {}
        for drf, plain in (("DrfList", "PlainList"), ("DrfDetail", "PlainDetail")):
            for user_class in (drf, plain, plain, drf):  # ABBA: drift of the machine's load cancels out
                baseline.setdefault(user_class, []).append(phase(user_class, args.baseline_seconds, args.users))
        all_runs.extend(run for runs in baseline.values() for run in runs)

        load_before_mix = load_average()
        postgres_before = process_cpu_seconds(database_backends())
        machine_before, mix_started = machine_cpu_seconds(), time.monotonic()
        mixed = phase("MixedUser", args.seconds, args.spawn_rate)
        cpu = {"machine": machine_cpu_seconds() - machine_before}
        elapsed = time.monotonic() - mix_started
        postgres_after = process_cpu_seconds(database_backends())
        cpu["postgres"] = sum(used - postgres_before.get(pid, 0.0) for pid, used in postgres_after.items())
        cpu.update(gunicorn=mixed["gunicorn_cpu"], worker=mixed["worker_cpu"], locust=mixed["locust_cpu"])
        load_after_mix = load_average()
        all_runs.append(mixed)
        drain = wait_for_executions(history_max_id, args.grace)

        stats = report_mix(mixed, cpu, elapsed, args)
        report_baseline(baseline, args)
        problems = check_executions(stats, history_max_id, drain) + response_problems(all_runs)
        print(
            f"\nload average: at the start {load_at_start}; before the mix {load_before_mix}; after it "
            f"{load_after_mix}; at the end {load_average()}.\nThis 2-core machine is shared with other engineers' "
            "work: absolute figures move with it; the DRF/plain ratios, measured interleaved, move less."
        )
        if problems:
            sys.exit("\nFAILED:\n- " + "\n- ".join(problems))
        ok = True
    finally:
        for proc in reversed(processes):
            stop(proc)
        connections.close_all()
        drop_database(BENCH_DB)
        broker.flushdb()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
