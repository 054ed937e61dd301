"""``python -m services.feature_store``: wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from services.feature_store.config import FeatureStoreSettings
from services.feature_store.readiness import ReadinessMonitor
from services.feature_store.servicer import SERVICE_NAME, FeatureStoreServicer
from services.feature_store.store import FeatureStore
from shared.gen.acme.recsys.v1 import feature_store_pb2_grpc
from shared.logging import configure_logging
from shared.server import GrpcServer, run_until_signal
from shared.telemetry import setup_telemetry

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A started feature store: the server, its store, and the shutdown hook to call."""

    server: GrpcServer
    store: FeatureStore
    monitor: ReadinessMonitor
    close: Callable[[], Awaitable[None]]


async def start(settings: FeatureStoreSettings) -> Running:
    """Build and start the service; readiness stays NOT_SERVING until the database is migrated
    and answers, and follows it afterwards."""
    store = FeatureStore.from_url(settings.database_url, pool_size=settings.db_pool_size)
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="feature-store")
    # Probes get their own thread: a probe stuck on an unreachable database must not take a
    # worker from the RPCs.
    probe_executor = ThreadPoolExecutor(1, thread_name_prefix="feature-store-probe")
    server = GrpcServer(settings, [SERVICE_NAME])
    feature_store_pb2_grpc.add_FeatureStoreServiceServicer_to_server(
        FeatureStoreServicer(settings, store.queries, store.ingest, store.admin, executor),
        server.server,
    )
    await server.start()
    monitor = ReadinessMonitor(
        partial(store.database.check_ready, migrate=settings.auto_migrate),
        server.set_ready,
        probe_executor,
        interval_s=settings.readiness_interval_s,
        timeout_s=settings.readiness_timeout_s,
    )
    monitor.start()

    async def close() -> None:
        await monitor.stop()
        executor.shutdown(wait=True)
        probe_executor.shutdown(wait=False, cancel_futures=True)
        store.close()

    return Running(server, store, monitor, close)


async def serve(settings: FeatureStoreSettings) -> None:
    running = await start(settings)
    await run_until_signal(running.server, on_shutdown=[running.close])


def main() -> None:
    # Every field has a default and the values come from RECSYS_FEATURE_STORE_* variables;
    # mypy cannot see pydantic's positional Field defaults.
    settings = FeatureStoreSettings()  # type: ignore[call-arg]
    configure_logging("feature-store", settings.log_level)
    telemetry = setup_telemetry("feature-store", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
