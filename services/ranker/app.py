"""The ranker's composition root: ``build_ranker`` wires the servable service.

``load_ranker`` builds the domain ``Ranker`` (tokenizer, version and scoring backend from the
artefact); ``build_ranker`` puts it behind the servicer and gRPC server with a readiness
watcher that follows the model server. ``__main__``, the tests and the in-process benchmark
all build the ranker through them.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services.ranker.clients import TritonBackend
from services.ranker.config import RankerSettings
from services.ranker.learned import RankingModel, RankingModels, load_ranking_model
from services.ranker.scorer import LocalBackend, Ranker, ReadinessWatcher, ScoringBackend
from services.ranker.servicer import RankerServicer
from shared.app import ServiceApp
from shared.gen.acme.recsys.v1 import ranker_pb2_grpc
from shared.server import GrpcServer

SERVICE_NAME = "acme.recsys.v1.RankerService"
log = logging.getLogger(__name__)


def load_learned(settings: RankerSettings) -> RankingModel | None:
    """The learned ranking model of the settings, or None (logged) when there is none."""
    model = load_ranking_model(settings.ranking_model_dir)
    if model is None:
        log.info("no learned ranking model; serving cross-encoder scores only")
    else:
        log.info("learned ranking model loaded", extra={"version": model.version})
    return model


def pair_tokens(settings: RankerSettings, meta: dict[str, Any]) -> int:
    """The pair length served: the artefact's trained length (``max_length`` in its meta),
    capped by ``max_text_tokens``. Longer pairs than training saw would only cost time (a
    64-token pair costs about 1.4x a 48-token one) and show the model more context than
    it learned from."""
    trained = meta.get("max_length")
    tokens = (
        settings.max_text_tokens if trained is None else min(int(trained), settings.max_text_tokens)
    )
    log.info(
        "ranker pair length",
        extra={"tokens": tokens, "trained": trained, "cap": settings.max_text_tokens},
    )
    return tokens


def load_ranker(settings: RankerSettings, executor: ThreadPoolExecutor) -> Ranker:
    """Tokenizer and version from the artefact; the backend the settings select."""
    # torch and transformers load with the first ranker, not with the package.
    from services.ranker.model import load_artefact, load_tokenizer

    backend: ScoringBackend
    if settings.backend == "local":
        import torch

        torch.set_num_threads(settings.torch_threads)
        artefact = load_artefact(settings.model_dir, device=settings.device)
        tokenizer, meta = artefact.tokenizer, artefact.meta
        backend = LocalBackend(artefact.model, executor)
    else:
        tokenizer, meta = load_tokenizer(settings.model_dir)
        backend = TritonBackend(settings.triton_url, settings.model_name)
    return Ranker(
        tokenizer,
        backend,
        executor,
        max_batch=settings.max_batch,
        max_text_tokens=pair_tokens(settings, meta),
        model_name=settings.model_name,
        model_version=str(meta["version"]),
    )


class RankerApp(ServiceApp[RankerSettings, RankerServicer]):
    """The ranker's server and servicer; readiness follows the scoring backend, polled by
    the watcher. The domain ranker and its executor are closed only when the app made them."""

    def __init__(
        self,
        settings: RankerSettings,
        server: GrpcServer,
        servicer: RankerServicer,
        ranker: Ranker,
        executor: ThreadPoolExecutor | None,
    ) -> None:
        super().__init__(settings, server, servicer)
        self.ranker = ranker
        self.executor = executor
        self.watcher = ReadinessWatcher(
            ranker.backend.is_ready, server.set_ready, settings.readiness_poll_s
        )

    async def on_start(self) -> None:
        self.watcher.start()

    async def close(self) -> None:
        await self.watcher.stop()
        if self.executor is not None:
            await self.ranker.backend.close()
            self.executor.shutdown(wait=False, cancel_futures=True)


def build_ranker(settings: RankerSettings, *, ranker: Ranker | None = None) -> RankerApp:
    """The ranker service on ``settings``, loading the model unless ``ranker`` is given (tests
    and benchmarks share one loaded model between apps); the learned ranking model always
    comes from ``settings.ranking_model_dir`` (small, loaded in milliseconds). Call inside
    the event loop that will serve it."""
    executor = None
    if ranker is None:
        executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="ranker")
        ranker = load_ranker(settings, executor)
    servicer = RankerServicer(
        ranker,
        max_candidates=settings.max_candidates,
        default_timeout_s=settings.request_timeout_s,
        ranking_model=RankingModels(settings.ranking_model_dir, load_learned(settings)),
    )
    server = GrpcServer(settings, [SERVICE_NAME])
    ranker_pb2_grpc.add_RankerServiceServicer_to_server(servicer, server.server)
    return RankerApp(settings, server, servicer, ranker, executor)
