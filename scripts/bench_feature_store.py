"""Feature store scale benchmark: how lookup and ingest cost grow with users and events,
on SQLite and PostgreSQL.

    python scripts/bench_feature_store.py [--sizes 200,1000,4000] [--backends sqlite,postgresql]
        [--postgres-url URL] [--record docs/benchmarks.md]

For each size (number of synthetic users; events grow with them, about 28 per user) it seeds a
fresh database through the real FeatureStore (pseudonymized ids), then times
GetUserFeatures for random users, a 500-id GetItemFeatures batch (one query), and ingest
throughput of new events. Prints a Markdown table and, with --record, appends it to a file.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from services.feature_store.store import Event, FeatureStore
from shared.data import synthetic

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pseudonym(raw: str) -> str:
    # A stand-in key for benchmarking only: cost is what matters here, not secrecy.
    return "bench." + hashlib.sha256(raw.encode()).hexdigest()[:32]


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench_one(url: str, users: int, seed: int = 7) -> dict[str, float]:
    data = synthetic.generate(n_items=max(1000, users), n_users=users, seed=seed)
    store = FeatureStore.from_url(url)
    store.migrate()
    t0 = time.perf_counter()
    seeded = store.seed_dataset(data, _pseudonym)
    seed_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    user_ids = [_pseudonym(u) for u in data.users()]
    item_ids = list(data.items)
    user_ms = _timed(lambda: store.get_user_features(str(rng.choice(user_ids)), 20), 200)
    batch = [str(i) for i in rng.choice(item_ids, size=500, replace=False)]
    item_ms = _timed(lambda: store.get_item_features(batch), 30)
    now = datetime.now(UTC)

    def ingest() -> None:
        store.ingest_events(
            [
                Event(
                    uuid.uuid4().hex,
                    str(rng.choice(user_ids)),
                    str(rng.choice(item_ids)),
                    "view",
                    now,
                )
                for _ in range(100)
            ]
        )

    ingest_ms = _timed(ingest, 10)
    store.close()
    return {
        "users": users,
        "events": seeded.events_accepted,
        "seed_events_per_s": seeded.events_accepted / seed_s,
        "user_p50": _pct(user_ms, 50),
        "user_p95": _pct(user_ms, 95),
        "items500_p50": _pct(item_ms, 50),
        "items500_p95": _pct(item_ms, 95),
        "ingest_events_per_s": 100 / (statistics.median(ingest_ms) / 1000),
    }


def _fresh_pg_schema(base: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        engine.dispose()

    return f"{base}?options=-csearch_path%3D{schema}", drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200,1000,4000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--record", type=Path, default=None)
    ns = parser.parse_args(argv)
    sizes = [int(s) for s in ns.sizes.split(",")]
    rows = []
    for backend in ns.backends.split(","):
        for users in sizes:
            print(f"... {backend}: {users} users", flush=True)
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    row = bench_one(f"sqlite:///{tmp}/bench.sqlite", users)
            elif backend == "postgresql":
                url, drop = _fresh_pg_schema(ns.postgres_url)
                try:
                    row = bench_one(url, users)
                finally:
                    drop()
            else:
                raise SystemExit(f"unknown backend {backend!r}")
            rows.append({"backend": backend, **row})
    header = (
        "| backend | users | events | seed events/s | GetUserFeatures p50 / p95 ms "
        "| 500-id GetItemFeatures p50 / p95 ms | ingest events/s (batches of 100) |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header] + [
        f"| {r['backend']} | {r['users']:,} | {r['events']:,} | {r['seed_events_per_s']:,.0f} "
        f"| {r['user_p50']:.2f} / {r['user_p95']:.2f} "
        f"| {r['items500_p50']:.1f} / {r['items500_p95']:.1f} "
        f"| {r['ingest_events_per_s']:,.0f} |"
        for r in rows
    ]
    table = "\n".join(lines)
    print(table)
    if ns.record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        with ns.record.open("a") as f:
            f.write(
                f"\n### Feature store scale ({stamp}, {platform.machine()} "
                f"{platform.processor() or 'CPU'}, 2 cores)\n\n"
                f"Command: `python scripts/bench_feature_store.py --sizes {ns.sizes} "
                f"--backends {ns.backends}`; dataset: synthetic generator.\n\n{table}\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
