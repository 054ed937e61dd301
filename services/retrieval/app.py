"""The retrieval service's composition root: ``build_retrieval`` wires the servable service.

``__main__``, the tests and the in-process benchmark all build retrieval through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from services.retrieval.config import RetrievalSettings
from services.retrieval.servicer import RetrievalServicer
from shared.app import ServiceApp
from shared.errors import ServiceError
from shared.gen.acme.recsys.v1 import retrieval_pb2_grpc
from shared.server import GrpcServer

SERVICE_NAME = "acme.recsys.v1.RetrievalService"
log = logging.getLogger("services.retrieval")


async def poll_latest_forever(servicer: RetrievalServicer, interval_s: float) -> None:
    """Hot-swap to LATEST whenever it moves; a failed load keeps the served index."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await servicer.poll_latest()
        except ServiceError as exc:
            log.error("reload of LATEST failed", extra={"error": exc.message})


class RetrievalApp(ServiceApp[RetrievalSettings, RetrievalServicer]):
    """The retrieval server, servicer and executor. Start loads the configured index version;
    readiness turns SERVING inside that load, never before."""

    def __init__(
        self,
        settings: RetrievalSettings,
        server: GrpcServer,
        servicer: RetrievalServicer,
        executor: ThreadPoolExecutor,
    ) -> None:
        super().__init__(settings, server, servicer)
        self.executor = executor
        self._poller: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        try:
            await self.servicer.load(self.settings.index_version)
        except ServiceError as exc:
            # Without a loadable version the process stays up NOT_SERVING so an operator can
            # publish one and call LoadIndexVersion.
            log.error("no index loaded at start", extra={"error": exc.message})
        if self.settings.reload_interval_s > 0:
            self._poller = asyncio.create_task(
                poll_latest_forever(self.servicer, self.settings.reload_interval_s)
            )

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self.executor.shutdown(wait=True)


def build_retrieval(settings: RetrievalSettings) -> RetrievalApp:
    """Retrieval on ``settings``; nothing is loaded until ``start``. Call inside the event loop
    that will serve it."""
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="retrieval")
    server = GrpcServer(settings, [SERVICE_NAME])
    servicer = RetrievalServicer(settings, executor, on_ready=server.set_ready)
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server.server)
    return RetrievalApp(settings, server, servicer, executor)
