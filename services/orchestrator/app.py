"""Assembling a running orchestrator: channels, popularity refresher, pipeline, gRPC server.

``__main__`` runs it until a signal; tests start it in-process on port 0 next to real
downstream services and stop it with ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from opentelemetry import metrics, trace

from services.orchestrator.clients import Downstreams
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.pipeline import Pipeline, PipelineMetrics
from services.orchestrator.popularity import PopularityCache
from services.orchestrator.servicer import SERVICE_NAME, RecommendationServicer
from shared.gen.acme.recsys.v1 import feature_store_pb2, orchestrator_pb2_grpc
from shared.server import GrpcServer

POPULARITY_FETCH_TIMEOUT_S = 2.0


@dataclass
class Orchestrator:
    """A started orchestrator and the things ``close`` must stop, in order."""

    server: GrpcServer
    servicer: RecommendationServicer
    popularity: PopularityCache
    downstreams: Downstreams
    stop_refresh: asyncio.Event
    refresher: asyncio.Task[None]

    @property
    def port(self) -> int:
        return self.server.port

    async def stop_background(self) -> None:
        self.stop_refresh.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.refresher

    async def close(self, grace: float = 0.5) -> None:
        """Stop serving, then the refresher, then the channels (the shutdown order)."""
        await self.server.stop(grace)
        await self.stop_background()
        await self.downstreams.close()


async def start_orchestrator(
    settings: OrchestratorSettings,
    *,
    tracer: trace.Tracer | None = None,
    meter: metrics.Meter | None = None,
) -> Orchestrator:
    """Start serving on ``settings.port``; tracer and meter default to the global providers
    that shared.telemetry installs (tests pass their own to read spans and metrics back)."""
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
        ranker_weight=settings.ranker_weight,
        metrics_=PipelineMetrics(meter),
        tracer=tracer,
    )
    servicer = RecommendationServicer(settings, pipeline)
    server = GrpcServer(settings, [SERVICE_NAME])
    orchestrator_pb2_grpc.add_RecommendationServiceServicer_to_server(servicer, server.server)
    await server.start()
    stop_refresh = asyncio.Event()
    refresher = asyncio.create_task(popularity.run(stop_refresh))
    # Ready at once: every stage but the gateway has a fallback, and a down gateway is
    # answered per request with UNAVAILABLE, which is the truthful answer.
    await server.set_ready(True)
    return Orchestrator(server, servicer, popularity, downstreams, stop_refresh, refresher)
