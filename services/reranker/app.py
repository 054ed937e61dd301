"""The reranker's composition root: ``build_reranker`` wires the servable service.

``__main__``, the tests and the in-process benchmark all build the reranker through it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace

from services.reranker.config import RerankerSettings
from services.reranker.servicer import SERVICE_NAME, RerankerServicer
from shared.app import ServiceApp
from shared.gen.acme.recsys.v1 import reranker_pb2_grpc
from shared.server import GrpcServer

log = logging.getLogger("services.reranker")


class RerankerApp(ServiceApp[RerankerSettings, RerankerServicer]):
    """The reranker's server, servicer and the executor its selections run in."""

    def __init__(
        self,
        settings: RerankerSettings,
        server: GrpcServer,
        servicer: RerankerServicer,
        executor: ThreadPoolExecutor,
    ) -> None:
        super().__init__(settings, server, servicer)
        self.executor = executor

    async def on_start(self) -> None:
        # Stateless and model-free: it can serve as soon as it listens.
        await self.server.set_ready(True)
        log.info("ready", extra={"default_method": self.settings.default_method})

    async def close(self) -> None:
        self.executor.shutdown(wait=True)


def build_reranker(
    settings: RerankerSettings, *, tracer: trace.Tracer | None = None
) -> RerankerApp:
    """The reranker on ``settings``; ``tracer`` defaults to the global provider's (tests pass
    their own to read spans back). Call inside the event loop that will serve it."""
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="reranker")
    servicer = RerankerServicer(settings, executor, tracer=tracer)
    server = GrpcServer(settings, [SERVICE_NAME])
    reranker_pb2_grpc.add_RerankerServiceServicer_to_server(servicer, server.server)
    return RerankerApp(settings, server, servicer, executor)
