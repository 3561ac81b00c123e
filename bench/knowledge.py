"""Benchmark: knowledge base ingestion rate, and HNSW search latency and recall.

1. Ingestion: documents of realistic text indexed through the real code path
   (knowledge.ingestion.ingest: claim, chunk, embed with the default hashing embedder,
   write to pgvector, switch the live version), in this process. Reports chunks/s.
2. Search: 100,000 chunks of 384-dim vectors in one user's namespace, among other
   namespaces (2 users with 25,000 chunks each and 400 users with 50), bulk-loaded with
   binary COPY and indexed with the same HNSW index the application creates. Vectors are
   clustered (unit Gaussian clusters, like topics in real embeddings) since uniform random
   vectors in 384 dims make recall meaningless. Queries are new draws from the same
   clusters and run through PgvectorStore.search (iterative filtered HNSW scan); recall@10
   compares with exact search (the same filtered query with index scans disabled).

Uses its own scratch database (bench_inflow_knowledge), created and dropped here.
Run: .venv/bin/python bench/knowledge.py [--chunks 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support.corpus import SENTENCES  # noqa: E402 (needs ROOT on sys.path)
from bench.support.stack import create_database, drop_database, percentile, production_env  # noqa: E402

BENCH_DB = "bench_inflow_knowledge"
SERVER_URL = "postgres://postgres@127.0.0.1:5432"
# Production settings (DEBUG off: with it on, Django records every query).
os.environ.update(
    production_env(database=BENCH_DB, redis_url="redis://127.0.0.1:6379/10", app_secret=secrets.token_urlsafe(32))
    | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        "EMBEDDINGS_PROVIDER": "hashing",
        "EMBEDDINGS_DIM": "384",
        "VECTOR_STORE": "pgvector",
    }
)

DIM = 384
EMBEDDER = "bench-clustered"
OTHER_BIG_USERS, OTHER_BIG_CHUNKS = 2, 25_000
SMALL_USERS, SMALL_CHUNKS = 400, 50
CHUNKS_PER_DOCUMENT = 100
# The vector model. Real text embeddings share a common direction (unrelated texts still
# score ~0.2), businesses talk about the same topics (shipping, returns, sizes...), each in
# its own words, and passages scatter around what they are about:
#   centre = unit(topic + TOPIC_SPREAD * own direction), one per user and subject;
#   vector = unit(COMMON * common + centre + noise of norm NOISE).
# So a query's neighbourhood holds other users' vectors too, which is what makes a
# filtered search hard (islands of well-separated clusters would make it easy).
TOPICS = 300
CLUSTERS_PER_USER = 1_000
TOPIC_SPREAD = 0.9
COMMON = 0.5
NOISE = 0.75


# --- 1. ingestion ----------------------------------------------------------------------------


SYLLABLES = "ka lo mi ren tos va bel cor din fa gri hum jo lek mor nis pra qui sol tan ul ves wex yor zan".split()  # noqa: SIM905
COLOURS = ["black", "white", "navy", "olive", "sand", "rust", "stone", "forest", "charcoal", "cream"]
MATERIALS = ["organic cotton", "recycled wool", "linen", "denim", "merino", "leather", "hemp", "silk"]


def product_sentence(rng, vocabulary: list[str]) -> str:
    # Zipf-like word choice: a few names recur a lot, most rarely (like product catalogues).
    first, second = (vocabulary[min(int(rng.zipf(1.3)), len(vocabulary)) - 1] for _ in range(2))
    colour, material = rng.choice(COLOURS), rng.choice(MATERIALS)
    return f"The {first} {second} in {colour} is made of {material} and costs {int(rng.integers(15, 300))} euros."


def measure_ingestion(documents: int, rng) -> dict[str, float]:
    from accounts.models import User
    from knowledge import ingestion
    from knowledge.embeddings import HashingEmbedder
    from knowledge.models import Document
    from knowledge.stores.pgvector import PgvectorStore

    vocabulary = sorted({"".join(rng.choice(SYLLABLES, size=int(rng.integers(2, 4)))) for _ in range(20_000)})
    rng.shuffle(vocabulary)
    owner = User.objects.create_user("ingest@bench.invalid", None, name="Ingest")
    texts = []
    for _ in range(documents):
        # 1,800 to 3,600 words: a policy or product page, 12 to 25 chunks.
        paragraphs = [
            " ".join(
                product_sentence(rng, vocabulary) if rng.random() < 0.6 else str(rng.choice(SENTENCES))
                for _ in range(6)
            )
            for _ in range(int(rng.integers(25, 50)))
        ]
        texts.append("\n\n".join(paragraphs))
    # Created directly (queued) rather than through the API: no Celery message is sent,
    # the indexing below is the real code a worker runs.
    rows = Document.objects.bulk_create(
        Document(user=owner, title=f"Help page {i}", content=text) for i, text in enumerate(texts)
    )
    # Time the two expensive parts from the outside (bench-only instrumentation).
    spent = {"embed": 0.0, "store": 0.0}

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    HashingEmbedder.embed_documents = timed("embed", HashingEmbedder.embed_documents)
    PgvectorStore.upsert = timed("store", PgvectorStore.upsert)
    started = time.perf_counter()
    for document in rows:
        outcome = ingestion.ingest(document.pk, document.generation)
        if not outcome.startswith("ready"):
            raise SystemExit(f"document {document.pk}: {outcome}")
    elapsed = time.perf_counter() - started
    chunks = sum(Document.objects.values_list("chunk_count", flat=True))
    return {
        "chunks": chunks,
        "words": sum(len(text.split()) for text in texts),
        "seconds": elapsed,
        "rate": chunks / elapsed,
        "embed": spent["embed"],
        "store": spent["store"],
    }


# --- 2. search -----------------------------------------------------------------------------


def unit_rows(matrix):
    import numpy as np

    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def random_units(rng, count: int):
    import numpy as np

    return unit_rows(rng.standard_normal((count, DIM)).astype(np.float32))


def user_centres(rng, topics):
    picks = rng.integers(0, len(topics), size=CLUSTERS_PER_USER)
    return unit_rows(topics[picks] + TOPIC_SPREAD * random_units(rng, CLUSTERS_PER_USER))


def clustered(rng, centres, count: int, common):
    import numpy as np

    picks = rng.integers(0, len(centres), size=count)
    noise = rng.standard_normal((count, DIM)).astype(np.float32) * (NOISE / np.sqrt(DIM))
    return unit_rows(COMMON * common + centres[picks] + noise).astype(np.float32)


def load_namespaces(target_chunks: int, rng) -> tuple[dict[str, tuple[int, object]], object]:
    """Users, documents and chunks for every namespace.

    Returns the target, one 25k and one small namespace: (user id, cluster centres) each,
    and the common direction.
    """
    import psycopg
    from pgvector.psycopg import register_vector

    from accounts.models import User
    from knowledge.models import Document

    plan = [("target", target_chunks)]
    plan += [(f"big{i}", OTHER_BIG_CHUNKS) for i in range(OTHER_BIG_USERS)]
    plan += [(f"small{i}", SMALL_CHUNKS) for i in range(SMALL_USERS)]
    users = [User.objects.create_user(f"{name}@bench.invalid", None, name=name) for name, _ in plan]
    picked = {}
    common = random_units(rng, 1)[0]
    topics = random_units(rng, TOPICS)
    started = time.perf_counter()
    with psycopg.connect(f"{SERVER_URL}/{BENCH_DB}") as conn:
        register_vector(conn)
        conn.execute("DROP INDEX knowledge_chunks_hnsw_384")  # rebuilt in one go after the load
        for user, (name, count) in zip(users, plan, strict=True):
            centres = user_centres(rng, topics)
            if name in ("target", "big0", "small0"):
                picked[name] = (user.pk, centres)
            documents = Document.objects.bulk_create(
                Document(user=user, title=f"{name} {i}", content="-", status="ready", indexed_generation=1)
                for i in range(max(1, count // CHUNKS_PER_DOCUMENT))
            )
            vectors = clustered(rng, centres, count, common)
            with conn.cursor().copy(
                "COPY knowledge_chunks (user_id, document_id, generation, position, text, embedding, embedder, dim) "
                "FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int8", "int4", "int4", "text", "vector", "varchar", "int2"])
                for index, vector in enumerate(vectors):
                    document = documents[index % len(documents)]
                    copy.write_row((user.pk, document.pk, 1, index, f"passage {index}", vector, EMBEDDER, DIM))
        conn.commit()
    print(
        f"  loaded {sum(c for _, c in plan):,} chunks in {len(plan)} namespaces "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return picked, common


def build_index() -> float:
    from django.db import connection

    from knowledge.stores.pgvector import ensure_index

    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '2GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
    started = time.perf_counter()
    assert ensure_index(DIM)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunks")
    return elapsed


def exact_top(user_id: int, vector, k: int) -> list[tuple[int, int]]:
    from django.db import connection, transaction

    from knowledge.stores.pgvector import SEARCH_SQL, vector_literal

    literal = vector_literal(vector)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(SEARCH_SQL.format(dim=DIM), [literal, user_id, EMBEDDER, literal, k])
        return [(row[0], row[2]) for row in cursor.fetchall()]


def explain(user_id: int, vector) -> str:
    from django.db import connection, transaction

    from knowledge.stores.pgvector import SEARCH_SQL, vector_literal

    literal = vector_literal(vector)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute("EXPLAIN " + SEARCH_SQL.format(dim=DIM), [literal, user_id, EMBEDDER, literal, 10])
        plan = "\n".join("    " + row[0] for row in cursor.fetchall())
    return re.sub(r"'\[[^\]]*\]'", "'[...]'", plan)


def measure_search(user_id: int, queries, ef_search: int) -> tuple[list[float], list[list[tuple[int, int]]]]:
    from django.conf import settings

    from knowledge.stores.pgvector import PgvectorStore

    settings.KNOWLEDGE_HNSW_EF_SEARCH = ef_search
    store = PgvectorStore()
    for vector in queries[:20]:  # warm the index pages into the buffer cache
        store.search(user_id, vector, 10, embedder=EMBEDDER, dim=DIM)
    latencies, found = [], []
    for vector in queries:
        started = time.perf_counter()
        hits = store.search(user_id, vector, 10, embedder=EMBEDDER, dim=DIM)
        latencies.append((time.perf_counter() - started) * 1000)
        found.append([(hit.document_id, hit.position) for hit in hits])
    return latencies, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=100, help="documents for the ingestion run")
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the searched namespace")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400])
    args = parser.parse_args()

    import numpy as np

    create_database(BENCH_DB)
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        default_ef = settings.KNOWLEDGE_HNSW_EF_SEARCH

        call_command("migrate", verbosity=0)
        rng = np.random.default_rng(20261125)

        print("Ingestion (hashing embedder, 384 dims, real ingestion path, in-process)")
        run = measure_ingestion(args.documents, rng)
        print(
            f"  {run['chunks']:,} chunks ({run['words']:,} words, {args.documents} documents) in "
            f"{run['seconds']:.1f} s: {run['rate']:,.0f} chunks/s end to end"
        )
        other = run["seconds"] - run["embed"] - run["store"]
        print(
            f"  time spent: embedding {run['embed']:.1f} s ({run['chunks'] / run['embed']:,.0f} chunks/s), "
            f"chunk rows + HNSW inserts {run['store']:.1f} s, chunking and bookkeeping {other:.1f} s"
        )

        print(
            f"\nSearch: {args.chunks:,} chunks x {DIM} dims in one namespace among {1 + OTHER_BIG_USERS + SMALL_USERS}"
        )
        namespaces, common = load_namespaces(args.chunks, rng)
        target, centres = namespaces["target"]
        total = args.chunks + OTHER_BIG_USERS * OTHER_BIG_CHUNKS + SMALL_USERS * SMALL_CHUNKS
        print(f"  HNSW index (m=16, ef_construction=64) built in {build_index():.0f} s")
        queries = clustered(rng, centres, args.queries, common)
        print(f"  plan:\n{explain(target, queries[0])}")
        print(f"  exact search (index disabled): p50 {percentile_ms(target, queries[:30]):.1f} ms")
        report(
            f"the {args.chunks:,}-chunk namespace ({args.chunks / total:.0%} of the rows)",
            target,
            queries,
            args.ef_search,
        )
        big, big_centres = namespaces["big0"]
        big_queries = clustered(rng, big_centres, 100, common)
        report(
            f"a {OTHER_BIG_CHUNKS:,}-chunk namespace ({OTHER_BIG_CHUNKS / total:.0%})", big, big_queries, args.ef_search
        )
        small, small_centres = namespaces["small0"]
        small_queries = clustered(rng, small_centres, 100, common)
        report(f"a {SMALL_CHUNKS}-chunk namespace", small, small_queries, [default_ef])
        print(f"  plan:\n{explain(small, small_queries[0])}")
    finally:
        drop_database(BENCH_DB)


def report(label: str, user_id: int, queries, ef_values: list[int]) -> None:
    truth = [exact_top(user_id, vector, 10) for vector in queries]
    print(f"  {label}, {len(queries)} queries:")
    print(f"  {'ef_search':>11} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10}")
    for ef in ef_values:
        latencies, found = measure_search(user_id, queries, ef)
        recall = statistics.mean(len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True))
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        print(f"  {ef:>11} {p50:>8.2f} {p95:>8.2f} {recall:>10.3f}")


def percentile_ms(user_id: int, queries) -> float:
    latencies = []
    for vector in queries:
        started = time.perf_counter()
        exact_top(user_id, vector, 10)
        latencies.append((time.perf_counter() - started) * 1000)
    return percentile(latencies, 0.5)


if __name__ == "__main__":
    main()
