"""RerankerService: validate -> domain (rerank.rerank in the executor) -> response.

Spans carry the method, counts, k and the trade-off; never item ids, scores or embeddings.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Sequence
from concurrent.futures import Executor

import grpc
import numpy as np
from opentelemetry import trace

from services.reranker.config import RerankerSettings
from services.reranker.rerank import Method, RerankParams, rerank
from services.reranker.selection import Selection
from shared.errors import InvalidArgument
from shared.gen.acme.recsys.v1 import common_pb2, reranker_pb2, reranker_pb2_grpc

SERVICE_NAME = "acme.recsys.v1.RerankerService"

_FROM_PROTO = {
    common_pb2.RERANK_METHOD_NONE: Method.NONE,
    common_pb2.RERANK_METHOD_MMR: Method.MMR,
    common_pb2.RERANK_METHOD_DPP: Method.DPP,
}
_TO_PROTO = {method: value for value, method in _FROM_PROTO.items()}


def resolve_method(value: int, default: str) -> Method:
    """The domain method for a proto enum value; UNSPECIFIED means the configured default."""
    if value == common_pb2.RERANK_METHOD_UNSPECIFIED:
        return Method(default)
    if value not in _FROM_PROTO:
        raise InvalidArgument(f"method {value} is not a known RerankMethod")
    return _FROM_PROTO[value]


def validate_request(request: reranker_pb2.RerankRequest, settings: RerankerSettings) -> None:
    """Checks of the scalar fields and the list size, cheap enough for the event loop."""
    n = len(request.candidates)
    if n == 0:
        raise InvalidArgument("candidates must not be empty")
    if n > settings.max_candidates:
        raise InvalidArgument(f"at most {settings.max_candidates} candidates per request, got {n}")
    if request.k < 1:
        raise InvalidArgument("k must be >= 1")
    if not math.isfinite(request.tradeoff) or not 0.0 <= request.tradeoff <= 1.0:
        raise InvalidArgument("tradeoff must be a number in [0, 1]")
    if request.max_per_category < 0:
        raise InvalidArgument("max_per_category must be >= 0 (0 means no cap)")
    if request.window_size < 0 or request.window_size == 1:
        raise InvalidArgument("window_size must be 0 (service default) or at least 2")
    if not 0 <= request.category_cap_level <= settings.max_category_depth:
        raise InvalidArgument(
            "category_cap_level must be 0 (service default) or a level from 1 to "
            f"{settings.max_category_depth}"
        )


def parse_categories(
    candidates: Sequence[reranker_pb2.RerankCandidate], max_depth: int
) -> list[tuple[str, ...]] | None:
    """The category path of every candidate (None when none has one): ``category_path`` when
    set, else the one-level path of ``category``, so callers that send only the label keep
    today's meaning. Raises InvalidArgument naming the first offending position."""
    paths: list[tuple[str, ...]] = []
    for i, cand in enumerate(candidates):
        path = tuple(cand.category_path)
        if not path:
            paths.append((cand.category,) if cand.category else ())
            continue
        if len(path) > max_depth:
            raise InvalidArgument(
                f"candidates[{i}].category_path has {len(path)} levels, at most {max_depth}"
            )
        if not all(path):
            raise InvalidArgument(f"candidates[{i}].category_path must not contain empty levels")
        if cand.category and cand.category != path[0]:
            raise InvalidArgument(
                f"candidates[{i}].category must be empty or equal category_path[0]"
            )
        paths.append(path)
    return paths if any(paths) else None


def parse_candidates(
    candidates: Sequence[reranker_pb2.RerankCandidate], max_dim: int, max_depth: int
) -> tuple[np.ndarray, np.ndarray | None, list[tuple[str, ...]] | None]:
    """Relevance vector, embedding matrix (None when no candidate has one) and category paths
    (parse_categories); raises InvalidArgument naming the first offending position."""
    seen: set[str] = set()
    for i, cand in enumerate(candidates):
        if not cand.item_id:
            raise InvalidArgument(f"candidates[{i}].item_id must not be empty")
        if cand.item_id in seen:
            raise InvalidArgument(f"candidates[{i}].item_id repeats an earlier candidate")
        seen.add(cand.item_id)
        if not math.isfinite(cand.relevance):
            raise InvalidArgument(f"candidates[{i}].relevance must be a finite number")
    relevance = np.fromiter(
        (c.relevance for c in candidates), dtype=np.float64, count=len(candidates)
    )
    dim = len(candidates[0].embedding)
    if dim > max_dim:
        raise InvalidArgument(f"embedding dimension {dim} exceeds the limit {max_dim}")
    for i, cand in enumerate(candidates):
        if len(cand.embedding) != dim:
            raise InvalidArgument(
                f"candidates[{i}].embedding has dimension {len(cand.embedding)}, "
                f"candidates[0] has {dim}; all must match"
            )
    embeddings = None
    if dim:
        # One C-level pass over all values: converting each repeated field separately costs
        # about 1.5x as much, and the conversion dominates a request (see docs/reranker.md).
        flat = itertools.chain.from_iterable(c.embedding for c in candidates)
        embeddings = np.fromiter(flat, dtype=np.float64, count=len(candidates) * dim)
        embeddings = embeddings.reshape(len(candidates), dim)
        finite = np.isfinite(embeddings).all(axis=1)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise InvalidArgument(f"candidates[{bad}].embedding must contain finite numbers only")
    return relevance, embeddings, parse_categories(candidates, max_depth)


class RerankerServicer(reranker_pb2_grpc.RerankerServiceServicer):
    """Stateless: every request carries all it needs."""

    def __init__(
        self,
        settings: RerankerSettings,
        executor: Executor,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._tracer = tracer or trace.get_tracer(__name__)

    def _select(self, request: reranker_pb2.RerankRequest, params: RerankParams) -> Selection:
        relevance, embeddings, categories = parse_candidates(
            request.candidates, self._settings.max_embedding_dim, self._settings.max_category_depth
        )
        return rerank(relevance, embeddings, categories, params)

    async def Rerank(
        self, request: reranker_pb2.RerankRequest, context: grpc.aio.ServicerContext
    ) -> reranker_pb2.RerankResponse:
        validate_request(request, self._settings)
        method = resolve_method(request.method, self._settings.default_method)
        params = RerankParams(
            k=request.k,
            method=method,
            tradeoff=request.tradeoff,
            max_per_category=request.max_per_category,
            window=request.window_size or self._settings.default_window,
            category_weight=self._settings.category_weight,
            eps=self._settings.dpp_epsilon,
            cap_level=request.category_cap_level or self._settings.category_cap_level,
            level_weights=self._settings.category_level_weights,
        )
        with self._tracer.start_as_current_span("reranker.select") as span:
            span.set_attribute("reranker.method", method.value)
            span.set_attribute("reranker.candidates", len(request.candidates))
            span.set_attribute("reranker.k", request.k)
            span.set_attribute("reranker.tradeoff", request.tradeoff)
            span.set_attribute("reranker.window", params.window)
            span.set_attribute("reranker.cap_level", params.cap_level)
            loop = asyncio.get_running_loop()
            chosen = await loop.run_in_executor(self._executor, self._select, request, params)
            span.set_attribute("reranker.selected", int(chosen.indices.size))
            span.set_attribute("reranker.diversified", chosen.diversified)
        cands = request.candidates
        return reranker_pb2.RerankResponse(
            items=[
                reranker_pb2.RerankedItem(
                    item_id=cands[int(i)].item_id,
                    relevance=cands[int(i)].relevance,
                    selection_score=float(score),
                )
                for i, score in zip(chosen.indices, chosen.scores, strict=True)
            ],
            method=_TO_PROTO[method],
        )
