"""The production-like stack the benchmarks run against, and signed Meta deliveries.

- a scratch PostgreSQL database per benchmark, created and dropped here;
- gunicorn with docker/gunicorn.conf.py (gthread, access log on) on 127.0.0.1, DEBUG off,
  fresh random secrets, HTTPS enforced behind a proxy (clients send X-Forwarded-Proto);
- a real Celery worker started like docker-compose.yml starts it;
- CPU accounting per process group, and Meta comment deliveries signed like Meta signs them.

Importing this module does not import Django: the locust process (bench/support/
locustfile.py) uses the payload helpers without it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SERVER_URL = "postgres://postgres@127.0.0.1:5432"
ADMIN_DB_URL = f"{SERVER_URL}/postgres"
BIN = Path(sys.executable).parent
# Every request of the load clients: they stand behind the TLS-terminating proxy.
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


def production_env(*, database: str, redis_url: str, app_secret: str) -> dict[str, str]:
    """Environment of every process: DEBUG off, fresh secrets, HTTPS through a proxy.

    Sizing is the image's default for 2 cores: 2 gunicorn workers x 4 threads.
    """
    return {
        "DJANGO_SETTINGS_MODULE": "bench.support.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "PGCRYPTO_KEY": secrets.token_urlsafe(32),
        "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
        "META_APP_SECRET": app_secret,
        "META_VERIFY_TOKEN": secrets.token_urlsafe(16),
        "DATABASE_URL": f"{SERVER_URL}/{database}",
        "REDIS_URL": redis_url,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_PROXY_SSL_HEADER": "true",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "WORKER_CONCURRENCY": "4",
        "LOG_LEVEL": "INFO",
    }


# --- Scratch database ------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drop_database(name: str) -> None:
    import psycopg

    if "django.db" in sys.modules:  # this process's own connections would block the drop
        from django.db import connections

        connections.close_all()
    with psycopg.connect(ADMIN_DB_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def create_database(name: str) -> None:
    """An empty database of this name (a leftover from an interrupted run is dropped)."""
    import psycopg

    drop_database(name)
    with psycopg.connect(ADMIN_DB_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")


# --- Processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen:
    """gunicorn as the image runs it, on loopback; returns once /healthz answers 200."""
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--config",
            str(ROOT / "docker" / "gunicorn.conf.py"),
            "--bind",
            f"127.0.0.1:{port}",
            "config.wsgi",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop() and group_cpu_seconds()
    )
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", headers=PROXY_HEADERS)
            if response.status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(proc)
    sys.exit(f"gunicorn did not become healthy in 60 s:\n{log_path.read_text()[-3000:]}")


def start_worker(env: dict[str, str], log_path: Path, *, name: str) -> subprocess.Popen:
    """`celery -A config worker` as docker-compose.yml runs it; returns once it answers a ping.

    The caller must have Django set up with the same REDIS_URL (the ping goes through it).
    """
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={env.get('WORKER_CONCURRENCY', '4')}",
            "-n",
            f"{name}@%h",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the Celery worker exited:\n{log_path.read_text()[-3000:]}")
        if app.control.ping(timeout=0.5):
            return proc
    stop(proc)
    sys.exit(f"the Celery worker did not answer a ping in 60 s:\n{log_path.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (a warm shutdown), SIGKILL it after 20 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by a process group, recycled workers included."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if int(entry.name) == pgid:  # the leader also carries its reaped children's time
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / ticks


def process_cpu_seconds(pids) -> dict[int, float]:
    """CPU time (user + system) used so far by each of these processes still alive."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def machine_cpu_seconds() -> float:
    """CPU time all processes of the machine have used since boot (/proc/stat, not idle)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min, {os.cpu_count()} CPUs)"


# --- Meta deliveries -------------------------------------------------------------------


def sign(body: bytes, app_secret: str) -> str:
    """`X-Hub-Signature-256` as Meta computes it (tokens.webhooks.expected_signature)."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def comment_delivery(
    *,
    account_id: str,
    comment_id: str,
    from_id: str,
    username: str,
    text: str,
    media_id: str = "18000000000000001",
    time_s: int | None = None,
) -> bytes:
    """One Instagram comment webhook body, compact like Meta sends it."""
    payload = {
        "object": "instagram",
        "entry": [
            {
                "id": account_id,
                "time": int(time.time()) if time_s is None else time_s,
                "changes": [
                    {
                        "field": "comments",
                        "value": {
                            "from": {"id": from_id, "username": username},
                            "media": {"id": media_id, "media_product_type": "FEED"},
                            "id": comment_id,
                            "text": text,
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload, separators=(",", ":")).encode()
