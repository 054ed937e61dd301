"""``python -m services.feature_store``: wiring only."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
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


async def serve(settings: FeatureStoreSettings) -> None:
    store = FeatureStore.from_url(settings.database_url, pool_size=settings.db_pool_size)
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="feature-store")
    # Probes get their own thread: a probe stuck on an unreachable database must not take a
    # worker from the RPCs.
    probe_executor = ThreadPoolExecutor(1, thread_name_prefix="feature-store-probe")
    server = GrpcServer(settings, [SERVICE_NAME])
    feature_store_pb2_grpc.add_FeatureStoreServiceServicer_to_server(
        FeatureStoreServicer(settings, store, executor), server.server
    )
    await server.start()
    # Readiness stays NOT_SERVING until migrations are applied and the database answers.
    monitor = ReadinessMonitor(
        partial(store.check_ready, migrate=settings.auto_migrate),
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

    await run_until_signal(server, on_shutdown=[close])


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
