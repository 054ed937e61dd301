"""Latency and throughput of the feature store on a fresh database, printed as Markdown.

    python -m services.feature_store.bench --backend sqlite --dataset synthetic
    python -m services.feature_store.bench --backend postgresql \\
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test

SQLite runs in a temporary file; PostgreSQL in a temporary schema dropped afterwards. User ids
are pseudonymized with a throwaway HMAC key, as the seed job does with the gateway's key.
Measures: seeding throughput, store calls (GetItemFeatures-sized batches of 500 ids, user
features, one durable single-event ingest, a 100-event batch, the contribution-bounded counts),
and GetItemFeatures(500) through a real gRPC server on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from services.feature_store.store import AggregateKind, Event, FeatureStore
from shared.data.datasets import DATASETS, load_dataset


def _percentiles(samples_s: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples_s)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return f"{q[49]:.2f} / {q[94]:.2f} / {q[98]:.2f}"


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


@contextmanager
def _database(backend: str, postgres_url: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.sqlite'}"
        return
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


async def _grpc_item_latency(store: FeatureStore, ids: list[list[str]]) -> list[float]:
    from concurrent.futures import ThreadPoolExecutor

    from services.feature_store.config import FeatureStoreSettings
    from services.feature_store.servicer import SERVICE_NAME, FeatureStoreServicer
    from shared.channels import create_channel
    from shared.gen.acme.recsys.v1 import feature_store_pb2, feature_store_pb2_grpc
    from shared.server import GrpcServer

    settings = FeatureStoreSettings(port=0, database_url="sqlite://")  # type: ignore[call-arg]
    executor = ThreadPoolExecutor(2)
    server = GrpcServer(settings, [SERVICE_NAME])
    feature_store_pb2_grpc.add_FeatureStoreServiceServicer_to_server(
        FeatureStoreServicer(settings, store, executor), server.server
    )
    await server.start()
    samples = []
    try:
        async with create_channel(f"127.0.0.1:{server.port}") as channel:
            stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
            for batch in ids:
                start = time.perf_counter()
                await stub.GetItemFeatures(
                    feature_store_pb2.GetItemFeaturesRequest(item_ids=batch), timeout=10
                )
                samples.append(time.perf_counter() - start)
    finally:
        await server.stop(0)
        executor.shutdown()
    return samples


def run(backend: str, dataset_name: str, repeats: int, postgres_url: str) -> list[str]:
    rng = random.Random(0)
    key = secrets.token_bytes(32)

    def pseudonymize(raw: str) -> str:
        return "bench." + hmac.new(key, raw.encode(), hashlib.sha256).hexdigest()

    dataset = load_dataset(dataset_name)
    rows = [
        "| measurement | value |",
        "|---|---|",
        f"| dataset | {dataset.name}: {len(dataset.items)} items, "
        f"{len(dataset.users())} users, {len(dataset.interactions)} events |",
    ]
    with _database(backend, postgres_url) as url:
        store = FeatureStore.from_url(url)
        store.migrate()
        start = time.perf_counter()
        store.seed_dataset(dataset, pseudonymize)
        seconds = time.perf_counter() - start
        rows.append(
            f"| seed (catalog + events, 2000 per transaction) | {seconds:.1f} s, "
            f"{len(dataset.interactions) / seconds:,.0f} events/s |"
        )
        item_ids = list(dataset.items)
        batches = [rng.sample(item_ids, min(500, len(item_ids))) for _ in range(repeats)]
        it = iter(batches)
        rows.append(
            "| get_item_features, 500 ids, p50 / p95 / p99 ms | "
            f"{_percentiles(_time(lambda: store.get_item_features(next(it)), repeats))} |"
        )
        users = [pseudonymize(u) for u in dataset.users()]
        rows.append(
            "| get_user_features (50 recent), p50 / p95 / p99 ms | "
            + _percentiles(_time(lambda: store.get_user_features(rng.choice(users), 50), repeats))
            + " |"
        )
        now = datetime.now(UTC) - timedelta(minutes=1)
        counter = iter(range(10**9))

        def one_event() -> None:
            n = next(counter)
            store.ingest_events(
                [Event(f"b{n}", rng.choice(users), rng.choice(item_ids), "view", now)]
            )

        rows.append(
            "| ingest_events, 1 event (durable commit), p50 / p95 / p99 ms | "
            f"{_percentiles(_time(one_event, repeats))} |"
        )

        def hundred() -> None:
            batch = [
                Event(f"c{next(counter)}", rng.choice(users), rng.choice(item_ids), "view", now)
                for _ in range(100)
            ]
            store.ingest_events(batch)

        samples = _time(hundred, max(10, repeats // 10))
        rows.append(
            f"| ingest_events, 100 events, p50 ms (events/s) | "
            f"{statistics.median(samples) * 1000:.1f} "
            f"({100 / statistics.median(samples):,.0f}) |"
        )
        samples = _time(
            lambda: store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 5), 5
        )
        rows.append(
            f"| contribution_bounded_counts(ITEM_POPULARITY, 5), median ms | "
            f"{statistics.median(samples) * 1000:.1f} |"
        )
        grpc_samples = asyncio.run(_grpc_item_latency(store, batches))
        rows.append(
            f"| GetItemFeatures over gRPC loopback, 500 ids, p50 / p95 / p99 ms | "
            f"{_percentiles(grpc_samples)} |"
        )
        store.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.feature_store.bench")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--dataset", choices=DATASETS, default="synthetic")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args(argv)
    print(f"backend: {args.backend}")
    print("\n".join(run(args.backend, args.dataset, args.repeats, args.postgres_url)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
