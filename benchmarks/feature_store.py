"""Feature store benchmark: what each role costs on a fresh database, SQLite and PostgreSQL,
as users and events grow.

For each backend and dataset size the service is built with ``build_feature_store`` on a fresh
database (an SQLite file in a temporary folder, or a PostgreSQL schema dropped afterwards) and
seeded through the store with pseudonymized ids (a throwaway HMAC key, as the seed job does
with the gateway's key). Then it times, on the same data:

- queries: GetUserFeatures (50 recent items) and a 500-id GetItemFeatures (one query), both
  as store calls, and the 500-id batch again through the real gRPC server on loopback;
- ingest: one event per call (each a durable commit) and batches of 100 (events/s);
- admin: the contribution-bounded counts the privacy gateway releases (ITEM_POPULARITY, 5).

``scripts/bench_feature_store.py`` is the command line.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import platform
import random
import secrets
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from services.feature_store.app import build_feature_store
from services.feature_store.config import FeatureStoreSettings
from services.feature_store.model import AggregateKind, Event
from shared.channels import create_channel
from shared.data import synthetic
from shared.data.datasets import BUILTIN, load_data
from shared.data.types import Dataset
from shared.gen.acme.recsys.v1 import feature_store_pb2, feature_store_pb2_grpc

__all__ = [
    "BACKENDS",
    "BUILTIN",
    "DEFAULT_POSTGRES_URL",
    "Result",
    "Spread",
    "markdown",
    "record",
    "run",
]

BACKENDS = ("sqlite", "postgresql")
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ITEM_BATCH = 500
RECENT_ITEMS = 50
INGEST_BATCH = 100


@dataclass(frozen=True)
class Spread:
    """p50 and p95 of latency samples, in milliseconds."""

    p50: float
    p95: float

    @classmethod
    def of(cls, samples_s: Sequence[float]) -> Spread:
        ms = np.asarray(samples_s) * 1000
        return cls(float(np.percentile(ms, 50)), float(np.percentile(ms, 95)))

    def __str__(self) -> str:
        return f"{self.p50:.2f} / {self.p95:.2f}"


@dataclass(frozen=True)
class Result:
    """The figures of one backend on one dataset."""

    backend: str
    users: int
    events: int
    seed_events_per_s: float
    user_features: Spread
    item_features: Spread
    item_features_grpc: Spread
    ingest_one: Spread
    ingest_events_per_s: float
    bounded_counts_ms: float


def pseudonymizer(key: bytes) -> Callable[[str], str]:
    def pseudonymize(raw: str) -> str:
        return "bench." + hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()

    return pseudonymize


@contextmanager
def fresh_database(backend: str, postgres_url: str) -> Iterator[str]:
    """The URL of an empty database on ``backend``, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'create schema "{schema}"')
    try:
        sep = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'drop schema "{schema}" cascade')
        admin.dispose()


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


async def bench_one(backend: str, url: str, dataset: Dataset, repeats: int, seed: int) -> Result:
    """Seed ``dataset`` into the empty database at ``url`` and measure it."""
    rng = random.Random(seed)
    pseudonymize = pseudonymizer(secrets.token_bytes(32))
    app = build_feature_store(
        FeatureStoreSettings(port=0, database_url=url)  # type: ignore[call-arg]
    )
    store = app.store
    store.migrate()
    start = time.perf_counter()
    seeded = store.seed_dataset(dataset, pseudonymize)
    seed_s = time.perf_counter() - start

    users = [pseudonymize(u) for u in dataset.users()]
    item_ids = list(dataset.items)
    batches = [rng.sample(item_ids, min(ITEM_BATCH, len(item_ids))) for _ in range(repeats)]
    user_samples = _timed(
        lambda: store.queries.get_user_features(rng.choice(users), RECENT_ITEMS), repeats
    )
    next_batch = iter(batches)
    item_samples = _timed(lambda: store.queries.get_item_features(next(next_batch)), repeats)

    # A minute back: inside the store's clock-skew bound on any machine.
    now = datetime.now(UTC) - timedelta(minutes=1)
    counter = iter(range(10**9))

    def events(n: int) -> list[Event]:
        return [
            Event(f"bench-{next(counter)}", rng.choice(users), rng.choice(item_ids), "view", now)
            for _ in range(n)
        ]

    one_samples = _timed(lambda: store.ingest.ingest_events(events(1)), repeats)
    batch_samples = _timed(
        lambda: store.ingest.ingest_events(events(INGEST_BATCH)), max(2, repeats // 10)
    )
    count_samples = _timed(
        lambda: store.admin.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 5), 5
    )

    await app.start()
    try:
        grpc_samples = await _grpc_item_latency(app.port, batches)
    finally:
        await app.stop(0)
    return Result(
        backend=backend,
        users=seeded.users,
        events=seeded.events_accepted,
        seed_events_per_s=seeded.events_accepted / seed_s,
        user_features=Spread.of(user_samples),
        item_features=Spread.of(item_samples),
        item_features_grpc=Spread.of(grpc_samples),
        ingest_one=Spread.of(one_samples),
        ingest_events_per_s=INGEST_BATCH / float(np.median(batch_samples)),
        bounded_counts_ms=float(np.median(count_samples)) * 1000,
    )


async def _grpc_item_latency(port: int, batches: Sequence[list[str]]) -> list[float]:
    samples = []
    async with create_channel(f"127.0.0.1:{port}") as channel:
        stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        for batch in batches:
            start = time.perf_counter()
            await stub.GetItemFeatures(
                feature_store_pb2.GetItemFeaturesRequest(item_ids=batch), timeout=10
            )
            samples.append(time.perf_counter() - start)
    return samples


def run(
    *,
    backends: Sequence[str],
    sizes: Sequence[int],
    dataset: str = "synthetic",
    repeats: int = 200,
    postgres_url: str = DEFAULT_POSTGRES_URL,
    seed: int = 7,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Result]:
    """One ``Result`` per backend and size. ``sizes`` are synthetic user counts (the catalog
    has at least 1,000 items and events grow with users, about 28 each); any other ``dataset``
    (a data folder or built-in name, as ``--data``) is measured whole, once per backend."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    loads: list[Callable[[], Dataset]]
    if dataset == "synthetic":
        loads = [
            partial(synthetic.generate, n_items=max(1000, n), n_users=n, seed=seed) for n in sizes
        ]
    else:
        loads = [partial(load_data, dataset)]
    results = []
    for backend in backends:
        for load in loads:
            data = load()
            progress(f"{backend}: {data.name}, {len(data.users())} users")
            with fresh_database(backend, postgres_url) as url:
                results.append(asyncio.run(bench_one(backend, url, data, repeats, seed)))
    return results


def markdown(results: Sequence[Result]) -> str:
    """The results as one Markdown table, a row per backend and size."""
    lines = [
        "| backend | users | events | seed events/s | GetUserFeatures p50 / p95 ms "
        f"| {ITEM_BATCH}-id GetItemFeatures p50 / p95 ms | same over gRPC p50 / p95 ms "
        "| 1-event ingest (durable commit) p50 / p95 ms "
        f"| ingest events/s (batches of {INGEST_BATCH}) | DP counts (ITEM_POPULARITY, 5) ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.backend} | {r.users:,} | {r.events:,} | {r.seed_events_per_s:,.0f} "
        f"| {r.user_features} | {r.item_features} | {r.item_features_grpc} | {r.ingest_one} "
        f"| {r.ingest_events_per_s:,.0f} | {r.bounded_counts_ms:.1f} |"
        for r in results
    ]
    return "\n".join(lines)


def record(path: Path, table: str, *, command: str, dataset: str) -> None:
    """Append ``table`` to ``path`` under a dated heading naming the machine and command."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    source = "synthetic generator" if dataset == "synthetic" else dataset
    with path.open("a") as f:
        f.write(
            f"\n### Feature store scale ({stamp}, {platform.machine()} "
            f"{platform.processor() or 'CPU'}, {os.cpu_count()} cores)\n\n"
            f"Command: `{command}`; dataset: {source}.\n\n{table}\n"
        )
