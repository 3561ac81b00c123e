"""Benchmark: GDPR purge time and peak memory for a large account among others.

Builds, in a scratch database (bench_inflow_gdpr):
  - the account to purge: 100k executions (~1 KB of trigger data and step log each),
    10k knowledge chunks (384-dim vectors under the HNSW index), flows, tokens, Meta data;
  - other accounts' data around it: 100k executions and 20k chunks more;
  - a small account (10k executions, 1k chunks) purged first, as the memory baseline.
Then runs the real purge (accounts.gdpr.purge_user + after_purge: VACUUM of the chunks'
HNSW index and of the executions table) and prints time and peak Python memory
(tracemalloc) for both accounts: flat memory means the two peaks are alike.

Run: .venv/bin/python bench/gdpr.py
"""

from __future__ import annotations

import os
import resource
import secrets
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support.stack import create_database, drop_database, production_env  # noqa: E402 (needs ROOT on sys.path)

BENCH_DB = "bench_inflow_gdpr"
# Production settings (DEBUG off: with it on, Django records every query).
os.environ.update(
    production_env(database=BENCH_DB, redis_url="redis://127.0.0.1:6379/8", app_secret=secrets.token_urlsafe(32))
    | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "GDPR_LEDGER_PATH": "/tmp/bench-inflow-gdpr-ledger.jsonl",
        "LOG_LEVEL": "WARNING",
    }
)

TRIGGER = (
    '{"provider": "instagram", "account_id": "17841400000001", "event": "comment", "from_id": "5551234", '
    '"from_username": "someone", "text": "How much is shipping to Lyon? I would like to order two of them", '
    '"comment_id": "180000000000", "media_id": "179000000000"}'
)
LOG = (
    '[{"node_id": "c", "type": "logic.condition", "status": "succeeded", "attempt": 1, '
    '"started_at": "2026-11-20T10:00:00Z", "finished_at": "2026-11-20T10:00:00Z", "duration_ms": 0.4, '
    '"output": {"result": true, "left": "How much is shipping to Lyon?", "op": "contains", "right": "shipping"}, '
    '"error": null, "port": "true"}, {"node_id": "a", "type": "instagram.private_reply", "status": "succeeded", '
    '"attempt": 1, "started_at": "2026-11-20T10:00:00Z", "finished_at": "2026-11-20T10:00:01Z", '
    '"duration_ms": 320.5, "output": {"message_id": "m_1234567890", "recipient": "180000000000"}, "error": null}]'
)


def make_account(index: int, executions: int, chunks: int):
    """An account with data generated inside PostgreSQL (fast, like a real history)."""
    from django.db import connection

    from accounts.models import ApiKey, User
    from flows.models import Flow
    from knowledge.models import Document
    from tokens.models import ApiToken

    user = User.objects.create_user(f"bench{index}@example.com", "bench-password-123", name=f"Bench {index}")
    ApiKey.issue(user)
    flow = Flow.objects.create(user=user, name="Replies", flow_data={"nodes": [], "edges": []}, status="active")
    token = ApiToken(user=user, provider="instagram", account_id=f"17841400{index:06d}")
    token.set_token(f"IGQVJbench{index:06d}token0000000000")
    token.save()
    documents = [
        Document.objects.create(user=user, title=f"FAQ {n}", content="Shipping and returns.", status="ready")
        for n in range(max(1, chunks // 100))
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO flow_executions (flow_id, user_id, status, trigger_type, trigger_data, execution_log, "
            "started_at, completed_at, error, state, cancel_requested, run_seconds, recoveries) "
            "SELECT %s, %s, 'succeeded', 'instagram.comment', %s::jsonb, %s::jsonb, "
            "now() - (g || ' seconds')::interval, now(), '', '{}'::jsonb, false, 0.3, 0 "
            "FROM generate_series(1, %s) AS g",
            [flow.pk, user.pk, TRIGGER, LOG, executions],
        )
        # Clustered unit vectors: realistic for an HNSW index, cheap to generate in SQL.
        cursor.execute(
            "INSERT INTO knowledge_chunks (document_id, user_id, generation, position, text, embedding, embedder, dim) "
            "SELECT d.id, %s, 1, g, 'Shipping costs 5 EUR within France and is free above 50 EUR.', "
            "(SELECT array_agg(sin(g * 0.37 + i * 0.11 + %s) + random() * 0.2) "
            "FROM generate_series(1, 384) i)::vector, "
            "'hashing', 384 "
            "FROM generate_series(1, %s) AS g JOIN LATERAL (SELECT id FROM knowledge_documents "
            "WHERE user_id = %s ORDER BY id OFFSET (g %% %s) LIMIT 1) d ON true",
            [user.pk, index, chunks, user.pk, len(documents)],
        )
    return user


def measure_purge(user) -> tuple[float, float, float, dict]:
    """(purge seconds, retrain seconds, peak MB, counts) for one account."""
    from accounts import gdpr
    from accounts.models import User

    gdpr.request_deletion(user)
    tracemalloc.start()
    started = time.perf_counter()
    record = gdpr.purge_user(User.objects.get(pk=user.pk), batch_size=10_000)
    purged = time.perf_counter()
    gdpr.after_purge(report=lambda line: print("   ", line))
    retrained = time.perf_counter()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return purged - started, retrained - purged, peak / 1024 / 1024, record.counts


def main() -> None:
    create_database(BENCH_DB)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    print("building data: 2 accounts to purge (10k and 100k executions) among 4 others…", flush=True)
    small = make_account(1, executions=10_000, chunks=1_000)
    large = make_account(2, executions=100_000, chunks=10_000)
    for index in range(3, 7):
        make_account(index, executions=25_000, chunks=5_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM flow_executions")
        executions = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM knowledge_chunks")
        chunks = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('flow_executions'))")
        size = cursor.fetchone()[0]
    print(f"built in {time.perf_counter() - started:.0f} s: {executions} executions ({size}), {chunks} chunks")

    rows = {"10k executions + 1k chunks  ": measure_purge(small), "100k executions + 10k chunks": measure_purge(large)}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for label, (purge, retrain, peak, _) in rows.items():
        print(
            f"{label}: {purge + retrain:6.2f} s total ({purge:5.2f} s delete, {retrain:5.2f} s VACUUM/HNSW "
            f"retrain), peak Python memory {peak:5.2f} MB"
        )
    (_, _, small_peak, _), (_, _, large_peak, counts) = rows.values()
    print(f"memory ratio large/small: {large_peak / small_peak:.2f} (flat means ~1); process max RSS {rss:.0f} MB")
    print(f"removed for the large account: {counts}")
    connection.close()
    drop_database(BENCH_DB)


if __name__ == "__main__":
    main()
