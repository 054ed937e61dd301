"""The orchestrator's composition root: backends, popularity refresher, pipeline, gRPC server.

``build_orchestrator`` is the one place the orchestrator is assembled: ``__main__`` serves it
until a signal; tests, the in-process benchmark and the local stack build it the same way
(on port 0, with their own tracer, meter or backends) and stop it with ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from opentelemetry import metrics, trace

from services.orchestrator.attribution import ServedListRecorder, ServedListSink
from services.orchestrator.breaker import BreakerBackends, BreakerPolicy
from services.orchestrator.clients import Downstreams
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import PopularItems
from services.orchestrator.downstream import Backends
from services.orchestrator.experiments import ExperimentBoard
from services.orchestrator.pipeline import Pipeline, PipelineMetrics
from services.orchestrator.popularity import PopularityCache
from services.orchestrator.servicer import SERVICE_NAME, RecommendationServicer
from services.orchestrator.switches import SwitchBoard
from shared.app import ServiceApp
from shared.gen.acme.recsys.v1 import orchestrator_pb2_grpc
from shared.server import GrpcServer


class Orchestrator(ServiceApp[OrchestratorSettings, RecommendationServicer]):
    """An assembled orchestrator: server, servicer, pipeline, the popularity refresher that
    ``start`` runs, and the backends. ``close`` releases only backends the orchestrator opened
    itself; injected ones belong to whoever injected them."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        server: GrpcServer,
        servicer: RecommendationServicer,
        pipeline: Pipeline,
        popularity: PopularityCache,
        backends: Backends,
        close_backends: Callable[[], Awaitable[None]] | None = None,
        breakers: BreakerBackends | None = None,
        served_lists: ServedListRecorder | None = None,
        experiments: ExperimentBoard | None = None,
    ) -> None:
        super().__init__(settings, server, servicer)
        self.served_lists = served_lists
        self.experiments = experiments
        self.recorder: asyncio.Task[None] | None = None
        self.pipeline = pipeline
        self.popularity = popularity
        self.backends = backends
        self.breakers = breakers
        self.close_backends = close_backends
        self.stop_refresh = asyncio.Event()
        self.refresher: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self.refresher = asyncio.create_task(self.popularity.run(self.stop_refresh))
        if self.served_lists is not None:
            self.recorder = asyncio.create_task(self.served_lists.run(self.stop_refresh))
        # Ready at once: every stage but the gateway has a fallback, and a down gateway is
        # answered per request with UNAVAILABLE, which is the truthful answer.
        await self.server.set_ready(True)

    async def close(self) -> None:
        self.stop_refresh.set()
        if self.refresher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.refresher
            self.refresher = None
        if self.recorder is not None:
            # The recorder sends what is still queued before it ends (bounded by its timeout).
            with contextlib.suppress(asyncio.CancelledError):
                await self.recorder
            self.recorder = None
        if self.close_backends is not None:
            await self.close_backends()


def build_orchestrator(
    settings: OrchestratorSettings,
    *,
    tracer: trace.Tracer | None = None,
    meter: metrics.Meter | None = None,
    backends: Backends | None = None,
    clock: Callable[[], float] = time.monotonic,
    served_lists: ServedListSink | None = None,
) -> Orchestrator:
    """Assemble an orchestrator on ``settings.port``; nothing runs until ``start``.

    Tracer and meter default to the global providers that shared.telemetry installs (tests
    pass their own to read spans and metrics back); ``backends`` defaults to gRPC channels to
    the configured addresses. The stage switches come from the settings and
    ``switches_file`` (re-read when it changes, services.orchestrator.switches). Unless
    ``breaker_enabled`` is off, the pipeline and the popularity refresher call the backends
    through a circuit breaker per service. ``clock`` times both. Experiments come from
    ``experiments_file`` (services.orchestrator.experiments, re-read the same way). Answered
    lists go to ``served_lists`` in the background (services.orchestrator.attribution): the
    feature store's RecordServedLists by default, nothing with injected backends unless a
    sink is given, nothing when ``record_served_lists`` is off.
    """
    close_backends: Callable[[], Awaitable[None]] | None = None
    if backends is None:
        downstreams = Downstreams(settings)
        backends, close_backends = downstreams, downstreams.close
        served_lists = served_lists or downstreams.record_served_lists
    breakers = (
        BreakerBackends(backends, BreakerPolicy.from_settings(settings), clock=clock, meter=meter)
        if settings.breaker_enabled
        else None
    )
    source: Backends = breakers if breakers is not None else backends

    async def fetch_popular() -> PopularItems:
        return await source.popular_items(
            settings.popularity_size, [], settings.popularity_fetch_timeout_s
        )

    popularity = PopularityCache(fetch_popular, settings.popularity_refresh_s, meter=meter)
    switches = SwitchBoard(settings, clock=clock)
    experiments = ExperimentBoard(settings, clock=clock)
    recorder = ServedListRecorder(
        served_lists if settings.record_served_lists else None,
        batch=settings.served_list_batch,
        queue=settings.served_list_queue,
        timeout_s=settings.served_list_timeout_s,
        meter=meter,
    )
    pipeline = Pipeline(
        source,
        popularity,
        settings,
        metrics_=PipelineMetrics(meter),
        tracer=tracer,
        switches=switches,
        experiments=experiments,
    )
    servicer = RecommendationServicer(settings, pipeline, served_lists=recorder)
    server = GrpcServer(settings, [SERVICE_NAME])
    orchestrator_pb2_grpc.add_RecommendationServiceServicer_to_server(servicer, server.server)
    return Orchestrator(
        settings,
        server,
        servicer,
        pipeline,
        popularity,
        backends,
        close_backends,
        breakers,
        served_lists=recorder,
        experiments=experiments,
    )
