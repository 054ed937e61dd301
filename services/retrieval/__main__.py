"""python -m services.retrieval: serve RetrievalService (settings from RECSYS_RETRIEVAL_*)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from services.retrieval.config import RetrievalSettings
from services.retrieval.servicer import RetrievalServicer
from shared.errors import ServiceError
from shared.gen.acme.recsys.v1 import retrieval_pb2_grpc
from shared.logging import configure_logging
from shared.server import GrpcServer, run_until_signal
from shared.telemetry import setup_telemetry

SERVICE_NAME = "acme.recsys.v1.RetrievalService"
log = logging.getLogger("services.retrieval")


async def _poll_latest(servicer: RetrievalServicer, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await servicer.poll_latest()
        except ServiceError as exc:
            log.error("reload of LATEST failed", extra={"error": exc.message})


async def main() -> None:
    settings = RetrievalSettings()  # type: ignore[call-arg]
    configure_logging("retrieval", settings.log_level)
    telemetry = setup_telemetry("retrieval", traces_dir=settings.traces_dir)
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="retrieval")
    server = GrpcServer(settings, [SERVICE_NAME])
    servicer = RetrievalServicer(settings, executor, on_ready=server.set_ready)
    retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server.server)
    await server.start()
    try:
        # Readiness turns SERVING inside load(); without a loadable version the process
        # stays up NOT_SERVING so an operator can publish one and call LoadIndexVersion.
        await servicer.load(settings.index_version)
    except ServiceError as exc:
        log.error("no index loaded at start", extra={"error": exc.message})
    poller = None
    if settings.reload_interval_s > 0:
        poller = asyncio.create_task(_poll_latest(servicer, settings.reload_interval_s))

    async def stop_poller() -> None:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def close_executor() -> None:
        executor.shutdown(wait=True)

    await run_until_signal(server, on_shutdown=[stop_poller, close_executor])
    telemetry.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
