"""python -m services.ranker: the RankerService on RECSYS_RANKER_* settings."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from services.ranker.config import RankerSettings
from services.ranker.scorer import ReadinessWatcher
from services.ranker.service import SERVICE_NAME, build_ranker
from services.ranker.servicer import RankerServicer
from shared.gen.acme.recsys.v1 import ranker_pb2_grpc
from shared.logging import configure_logging
from shared.server import GrpcServer, run_until_signal
from shared.telemetry import setup_telemetry


async def main() -> None:
    settings = RankerSettings()  # type: ignore[call-arg]
    configure_logging("ranker", settings.log_level)
    telemetry = setup_telemetry("ranker", traces_dir=settings.traces_dir)
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="ranker")
    ranker = build_ranker(settings, executor)
    server = GrpcServer(settings, [SERVICE_NAME])
    ranker_pb2_grpc.add_RankerServiceServicer_to_server(
        RankerServicer(
            ranker,
            max_candidates=settings.max_candidates,
            default_timeout_s=settings.request_timeout_s,
        ),
        server.server,
    )
    await server.start()
    watcher = ReadinessWatcher(ranker.backend.is_ready, server.set_ready, settings.readiness_poll_s)
    watcher.start()

    async def close() -> None:
        await watcher.stop()
        await ranker.backend.close()
        executor.shutdown(wait=False, cancel_futures=True)

    await run_until_signal(server, on_shutdown=[close])
    telemetry.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    asyncio.run(main())
