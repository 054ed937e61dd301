"""RankerService: validate -> score on the configured backend -> response.

With a learned ranking model loaded (services.ranker.learned), the cross-encoder's scores and
the request's behaviour signals go through the shared feature builder
(shared.ranking_features) and the model; each item then also carries the learned relevance and
its per-feature contributions, and the response names the model's version. Without one, the
response is the cross-encoder's scores alone and the caller blends them itself.

``in_flight`` counts the ScoreCandidates calls being worked on. A call whose caller cancels
it (or whose deadline passes) is cancelled by grpc.aio, which cancels its Triton calls
(services.ranker.scorer), so the count drops as soon as callers give up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import grpc
from opentelemetry import trace

from services.ranker.learned import LearnedScore, RankingModel, RankingModels
from services.ranker.scorer import Candidate, Ranker
from shared.deadline import Budget
from shared.errors import InvalidArgument
from shared.gen.acme.recsys.v1 import common_pb2, ranker_pb2, ranker_pb2_grpc
from shared.ranking_features import (
    CandidateSignals,
    OwnInteraction,
    ShopperSignals,
    build_features,
)


def _finite(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number")
    return value


def shopper_signals(
    context: ranker_pb2.ShopperContext, now: Callable[[], datetime]
) -> ShopperSignals:
    """The behaviour signals of the request's context, or InvalidArgument naming the field."""
    affinities = {
        a.category: _finite(a.score, f"context.category_affinities[{i}].score")
        for i, a in enumerate(context.category_affinities)
    }
    prices = [
        _finite(p, f"context.recent_item_prices[{i}]")
        for i, p in enumerate(context.recent_item_prices)
    ]
    interactions = {}
    for i, x in enumerate(context.item_interactions):
        if not x.item_id:
            raise InvalidArgument(f"context.item_interactions[{i}].item_id must not be empty")
        if x.event_count < 0 or x.purchased_quantity < 0:
            raise InvalidArgument(f"context.item_interactions[{i}] counts must not be negative")
        interactions[x.item_id] = OwnInteraction(
            event_count=x.event_count,
            purchased_quantity=x.purchased_quantity,
            last_event_time=x.last_event_time.ToDatetime(tzinfo=UTC),
        )
    when = (
        context.request_time.ToDatetime(tzinfo=UTC) if context.HasField("request_time") else now()
    )
    return ShopperSignals(when, affinities, prices, interactions)


def candidate_signals(request: ranker_pb2.ScoreCandidatesRequest) -> list[CandidateSignals]:
    """The candidates' signals in request order (the order is the retrieval rank)."""
    return [
        CandidateSignals(
            item_id=c.item_id,
            top_category=c.category_path[0] if c.category_path else "",
            price=c.price,
            retrieval_score=_finite(c.retrieval_score, f"candidates[{i}].retrieval_score"),
            dp_popularity=_finite(c.dp_popularity, f"candidates[{i}].dp_popularity"),
        )
        for i, c in enumerate(request.candidates)
    ]


def _scored_items(
    candidates: Sequence[Candidate], scores: Sequence[float], learned: Sequence[LearnedScore]
) -> list[ranker_pb2.ScoredItem]:
    out = []
    for i, (c, s) in enumerate(zip(candidates, scores, strict=True)):
        item = ranker_pb2.ScoredItem(item_id=c.item_id, score=s)
        if learned:
            item.relevance = learned[i].relevance
            item.contributions.extend(
                common_pb2.FeatureContribution(feature=x.feature, value=x.value)
                for x in learned[i].contributions
            )
        out.append(item)
    return out


class RankerServicer(ranker_pb2_grpc.RankerServiceServicer):
    def __init__(
        self,
        ranker: Ranker,
        *,
        max_candidates: int,
        default_timeout_s: float,
        ranking_model: RankingModel | RankingModels | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ranker = ranker
        # One model (tests) is the registry of that model alone.
        self._models = (
            ranking_model
            if isinstance(ranking_model, RankingModels)
            else RankingModels(ranking_model.folder if ranking_model else None, ranking_model)
        )
        self._now = now
        self._max_candidates = max_candidates
        self._default_timeout_s = default_timeout_s
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _signals(
        self, request: ranker_pb2.ScoreCandidatesRequest, model: RankingModel | None
    ) -> tuple[ShopperSignals, list[CandidateSignals]] | None:
        if model is None:
            return None
        return shopper_signals(request.context, self._now), candidate_signals(request)

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
        model = self._models.get(request.ranking_model)
        signals = self._signals(request, model)
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
        learned: list[LearnedScore] = []
        version = ""
        if signals is not None and model is not None:
            # A few trees over tens of rows: well under a millisecond, run inline.
            learned = model.predict(build_features(*signals, scores))
            version = model.version
            span.set_attribute("ranker.ranking_model", version)
        return ranker_pb2.ScoreCandidatesResponse(
            scores=_scored_items(candidates, scores, learned),
            model_name=self._ranker.model_name,
            model_version=self._ranker.model_version,
            backend=self._ranker.backend.name,
            ranking_model_version=version,
        )
