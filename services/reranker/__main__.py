"""``python -m services.reranker``: wiring only."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from services.reranker.config import RerankerSettings
from services.reranker.servicer import SERVICE_NAME, RerankerServicer
from shared.gen.acme.recsys.v1 import reranker_pb2_grpc
from shared.logging import configure_logging
from shared.server import GrpcServer, run_until_signal
from shared.telemetry import setup_telemetry

log = logging.getLogger(__name__)


async def serve(settings: RerankerSettings, stop_event: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop_event``, for tests)."""
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="reranker")
    server = GrpcServer(settings, [SERVICE_NAME])
    reranker_pb2_grpc.add_RerankerServiceServicer_to_server(
        RerankerServicer(settings, executor), server.server
    )
    await server.start()
    # Stateless and model-free: it can serve as soon as it listens.
    await server.set_ready(True)
    log.info("ready", extra={"default_method": settings.default_method})

    async def close_executor() -> None:
        executor.shutdown(wait=True)

    await run_until_signal(server, on_shutdown=[close_executor], stop_event=stop_event)


def main() -> None:
    # Values come from RECSYS_RERANKER_* variables; mypy cannot see pydantic's Field defaults.
    settings = RerankerSettings()  # type: ignore[call-arg]
    configure_logging("reranker", settings.log_level)
    telemetry = setup_telemetry("reranker", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
