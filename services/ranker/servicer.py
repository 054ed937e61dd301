"""RankerService: validate -> score on the configured backend -> response.

``in_flight`` counts the ScoreCandidates calls being worked on. A call whose caller cancels
it (or whose deadline passes) is cancelled by grpc.aio, which cancels its Triton calls
(services.ranker.scorer), so the count drops as soon as callers give up.
"""

from __future__ import annotations

import math

import grpc
from opentelemetry import trace

from services.ranker.scorer import Candidate, Ranker
from shared.deadline import Budget
from shared.errors import InvalidArgument
from shared.gen.acme.recsys.v1 import ranker_pb2, ranker_pb2_grpc


class RankerServicer(ranker_pb2_grpc.RankerServiceServicer):
    def __init__(self, ranker: Ranker, *, max_candidates: int, default_timeout_s: float) -> None:
        self._ranker = ranker
        self._max_candidates = max_candidates
        self._default_timeout_s = default_timeout_s
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _candidates(self, request: ranker_pb2.ScoreCandidatesRequest) -> list[Candidate]:
        if not request.candidates:
            raise InvalidArgument("candidates must not be empty")
        if len(request.candidates) > self._max_candidates:
            raise InvalidArgument(
                f"at most {self._max_candidates} candidates per request, "
                f"got {len(request.candidates)}"
            )
        out = []
        for i, c in enumerate(request.candidates):
            if not c.item_id:
                raise InvalidArgument(f"candidates[{i}].item_id must not be empty")
            if not math.isfinite(c.price):
                raise InvalidArgument(f"candidates[{i}].price must be a finite number")
            out.append(Candidate(c.item_id, c.title, tuple(c.category_path), c.price))
        return out

    async def ScoreCandidates(
        self,
        request: ranker_pb2.ScoreCandidatesRequest,
        context: grpc.aio.ServicerContext,
    ) -> ranker_pb2.ScoreCandidatesResponse:
        candidates = self._candidates(request)
        budget = Budget.from_context(context, self._default_timeout_s)
        span = trace.get_current_span()
        span.set_attribute("ranker.candidates", len(candidates))
        span.set_attribute("ranker.backend", self._ranker.backend.name)
        span.set_attribute("ranker.batches", len(self._ranker.batches(len(candidates))))
        self._in_flight += 1
        try:
            scores = await self._ranker.score(
                list(request.context.recent_item_titles),
                list(request.context.recent_categories),
                candidates,
                budget,
            )
        finally:
            self._in_flight -= 1
        return ranker_pb2.ScoreCandidatesResponse(
            scores=[
                ranker_pb2.ScoredItem(item_id=c.item_id, score=s)
                for c, s in zip(candidates, scores, strict=True)
            ],
            model_name=self._ranker.model_name,
            model_version=self._ranker.model_version,
            backend=self._ranker.backend.name,
        )
