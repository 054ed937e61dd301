"""The feature store's composition root: ``build_feature_store(settings)``.

``__main__`` runs the app until a signal; the tests and the benchmark start it in-process on
port 0. Readiness stays NOT_SERVING until the database is migrated and answers, and follows
the database afterwards (``ReadinessMonitor``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Self

from services.feature_store.config import FeatureStoreSettings
from services.feature_store.readiness import ReadinessMonitor
from services.feature_store.servicer import SERVICE_NAME, FeatureStoreServicer
from services.feature_store.store import FeatureStore
from shared.gen.acme.recsys.v1 import feature_store_pb2_grpc
from shared.server import GrpcServer


@dataclass
class FeatureStoreApp:
    """A built feature store: its server, servicer and store, and what ``close`` releases."""

    settings: FeatureStoreSettings
    server: GrpcServer
    servicer: FeatureStoreServicer
    store: FeatureStore
    monitor: ReadinessMonitor
    executor: ThreadPoolExecutor
    probe_executor: ThreadPoolExecutor

    @property
    def port(self) -> int:
        """The bound port (0 before ``start``)."""
        return self.server.port

    async def start(self) -> int:
        """Bind and serve (NOT_SERVING until the first good probe); returns the port.

        A failed bind releases the executors and the pool again."""
        try:
            port = await self.server.start()
        except BaseException:
            await self.close()
            raise
        self.monitor.start()
        return port

    async def close(self) -> None:
        """Release what the server used: the probe loop, the executors, the database pool.

        Called after the server stopped (``run_until_signal`` stops it first)."""
        await self.monitor.stop()
        self.executor.shutdown(wait=True)
        # A probe stuck on an unreachable database must not hold up the shutdown.
        self.probe_executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    async def stop(self, grace: float | None = None) -> None:
        """Drain and stop the server (``grace`` seconds, default from settings), then close."""
        await self.server.stop(grace)
        await self.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


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
    server = GrpcServer(settings, [SERVICE_NAME])
    servicer = FeatureStoreServicer(settings, store.queries, store.ingest, store.admin, executor)
    feature_store_pb2_grpc.add_FeatureStoreServiceServicer_to_server(servicer, server.server)
    monitor = ReadinessMonitor(
        partial(store.database.check_ready, migrate=settings.auto_migrate),
        server.set_ready,
        probe_executor,
        interval_s=settings.readiness_interval_s,
        timeout_s=settings.readiness_timeout_s,
    )
    return FeatureStoreApp(settings, server, servicer, store, monitor, executor, probe_executor)
