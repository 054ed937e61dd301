"""``python -m services.orchestrator``: wiring only."""

from __future__ import annotations

import asyncio
import contextlib

from services.orchestrator.clients import Downstreams
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.pipeline import Pipeline
from services.orchestrator.popularity import PopularityCache
from services.orchestrator.servicer import SERVICE_NAME, RecommendationServicer
from shared.gen.acme.recsys.v1 import feature_store_pb2, orchestrator_pb2_grpc
from shared.logging import configure_logging
from shared.server import GrpcServer, run_until_signal
from shared.telemetry import setup_telemetry

POPULARITY_FETCH_TIMEOUT_S = 2.0


async def serve(settings: OrchestratorSettings) -> None:
    downstreams = Downstreams(settings)

    async def fetch_popular() -> feature_store_pb2.GetPopularItemsResponse:
        return await downstreams.popular_items(
            settings.popularity_size, [], POPULARITY_FETCH_TIMEOUT_S
        )

    popularity = PopularityCache(fetch_popular, settings.popularity_refresh_s)
    pipeline = Pipeline(
        downstreams,
        popularity,
        candidate_count=settings.candidate_count,
        recent_items=settings.recent_items,
    )
    server = GrpcServer(settings, [SERVICE_NAME])
    orchestrator_pb2_grpc.add_RecommendationServiceServicer_to_server(
        RecommendationServicer(settings, pipeline), server.server
    )
    await server.start()
    stop_refresh = asyncio.Event()
    refresher = asyncio.create_task(popularity.run(stop_refresh))
    # Ready at once: every stage but the gateway has a fallback, and a down gateway is
    # answered with UNAVAILABLE per request, which is the truthful answer.
    await server.set_ready(True)

    async def stop_background() -> None:
        stop_refresh.set()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher

    await run_until_signal(server, on_shutdown=[stop_background, downstreams.close])


def main() -> None:
    # Every field has a default and the values come from RECSYS_ORCHESTRATOR_* variables;
    # mypy cannot see pydantic's positional Field defaults.
    settings = OrchestratorSettings()  # type: ignore[call-arg]
    configure_logging("orchestrator", settings.log_level)
    telemetry = setup_telemetry("orchestrator", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
