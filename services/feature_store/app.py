"""The feature store's composition root: ``build_feature_store(settings)``.

``__main__`` runs the app until a signal; the tests and the benchmark start it in-process on
port 0. Readiness stays NOT_SERVING until the database is migrated and answers, and follows
the database afterwards (``ReadinessMonitor``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

from services.feature_store.config import FeatureStoreSettings
from services.feature_store.readiness import ReadinessMonitor
from services.feature_store.servicer import SERVICE_NAME, FeatureStoreServicer
from services.feature_store.store import FeatureStore
from shared.app import ServiceApp
from shared.gen.acme.recsys.v1 import feature_store_pb2_grpc
from shared.server import GrpcServer


class FeatureStoreApp(ServiceApp[FeatureStoreSettings, FeatureStoreServicer]):
    """A built feature store: its server, servicer and store, the readiness monitor, and the
    executors that ``close`` releases (also after a failed bind)."""

    def __init__(
        self,
        settings: FeatureStoreSettings,
        server: GrpcServer,
        servicer: FeatureStoreServicer,
        store: FeatureStore,
        monitor: ReadinessMonitor,
        executor: ThreadPoolExecutor,
        probe_executor: ThreadPoolExecutor,
    ) -> None:
        super().__init__(settings, server, servicer)
        self.store = store
        self.monitor = monitor
        self.executor = executor
        self.probe_executor = probe_executor

    async def on_start(self) -> None:
        # NOT_SERVING until the first good probe of the database.
        self.monitor.start()

    async def close(self) -> None:
        await self.monitor.stop()
        self.executor.shutdown(wait=True)
        # A probe stuck on an unreachable database must not hold up the shutdown.
        self.probe_executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def build_feature_store(settings: FeatureStoreSettings) -> FeatureStoreApp:
    """Wire the store's roles, the servicer, the server and the readiness monitor.

    Nothing connects yet: the engine opens connections on first use, and ``start`` binds.
    Call it inside the event loop that will serve: grpc.aio ties a server to its loop.
    """
    store = FeatureStore.from_url(settings.database_url, pool_size=settings.db_pool_size)
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="feature-store")
    # Probes get their own thread: a probe stuck on an unreachable database must not take a
    # worker from the RPCs.
    probe_executor = ThreadPoolExecutor(1, thread_name_prefix="feature-store-probe")
    servicer = FeatureStoreServicer(
        settings, store.queries, store.ingest, store.admin, executor, online=store.online
    )
    server = GrpcServer(settings, [SERVICE_NAME])
    feature_store_pb2_grpc.add_FeatureStoreServiceServicer_to_server(servicer, server.server)
    monitor = ReadinessMonitor(
        partial(store.database.check_ready, migrate=settings.auto_migrate),
        server.set_ready,
        probe_executor,
        interval_s=settings.readiness_interval_s,
        timeout_s=settings.readiness_timeout_s,
    )
    return FeatureStoreApp(settings, server, servicer, store, monitor, executor, probe_executor)
