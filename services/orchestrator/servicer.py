"""RecommendationService: validate, shed load, run the pipeline, build the response.

The public API's edge: requests become domain values here and the pipeline's Outcome becomes
the response, so the pipeline never sees a protobuf message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TypeVar

import grpc

from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    EventType,
    Outcome,
    RecommendQuery,
    RerankMethod,
    ShopperEvent,
    Stage,
)
from services.orchestrator.pipeline import Pipeline
from shared.deadline import Budget
from shared.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, ServiceError
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from shared.telemetry import current_trace_id

T = TypeVar("T")

SERVICE_NAME = "acme.recsys.v1.RecommendationService"
MAX_REF_LENGTH = 256
MAX_ID_LENGTH = 128


async def _within(budget: Budget, work: Awaitable[T]) -> T:
    """``work`` cut off when ``budget`` runs out.

    Every stage's call already has a timeout from the budget, but a fallback or the time
    between stages can still run past it; at the deadline the caller has gone, so whatever
    is still running (the fan-out's downstream calls included) is cancelled, not finished
    for nobody. A cancelled RPC cancels this task the same way.
    """
    try:
        async with asyncio.timeout(budget.remaining()):
            return await work
    except TimeoutError:
        raise DeadlineExceeded("the request's deadline passed") from None


def stage_to_proto(stage: Stage) -> common_pb2.Stage:
    return common_pb2.Stage.Value(f"STAGE_{stage.name}")


def _event_type(value: common_pb2.EventType) -> EventType:
    return EventType[common_pb2.EventType.Name(value).removeprefix("EVENT_TYPE_")]


def validate_recommend(
    request: orchestrator_pb2.RecommendRequest, settings: OrchestratorSettings
) -> RecommendQuery:
    """The request as a RecommendQuery, or InvalidArgument naming the bad field."""
    if not request.user_ref.strip():
        raise InvalidArgument("user_ref must not be empty")
    if len(request.user_ref) > MAX_REF_LENGTH:
        raise InvalidArgument(f"user_ref must be at most {MAX_REF_LENGTH} characters")
    if not 1 <= request.k <= settings.max_k:
        raise InvalidArgument(f"k must be in [1, {settings.max_k}]")
    if len(request.excluded_item_ids) > settings.max_exclusions:
        raise InvalidArgument(f"excluded_item_ids must hold at most {settings.max_exclusions} ids")
    # No stage uses the context, so it is dropped here after this size check: never sent
    # to another service, stored or logged (see RecommendRequest.context).
    if len(request.context) > settings.max_context_fields:
        raise InvalidArgument(f"context must hold at most {settings.max_context_fields} fields")
    diversity = request.diversity
    has_diversity = request.HasField("diversity")
    tradeoff = diversity.tradeoff if has_diversity else settings.default_tradeoff
    if not 0.0 <= tradeoff <= 1.0:  # also rejects NaN
        raise InvalidArgument("diversity.tradeoff must be in [0, 1]")
    if diversity.max_per_category < 0:
        raise InvalidArgument("diversity.max_per_category must not be negative")
    if diversity.method not in common_pb2.RerankMethod.values():
        raise InvalidArgument("diversity.method is not a known RerankMethod")
    return RecommendQuery(
        user_ref=request.user_ref,
        k=request.k,
        method=RerankMethod(common_pb2.RerankMethod.Name(diversity.method)),
        tradeoff=tradeoff,
        max_per_category=diversity.max_per_category,
        excluded_item_ids=tuple(request.excluded_item_ids),
        exclude_purchased=request.exclude_purchased,
    )


def validate_events(
    request: orchestrator_pb2.LogEventsRequest, settings: OrchestratorSettings
) -> list[ShopperEvent]:
    """The events as domain values, or InvalidArgument naming the first malformed event (the
    whole batch is then rejected)."""
    if not request.events:
        raise InvalidArgument("events must not be empty")
    if len(request.events) > settings.max_events_per_call:
        raise InvalidArgument(f"events must hold at most {settings.max_events_per_call} events")
    events = []
    for i, event in enumerate(request.events):
        if not event.event_id or len(event.event_id) > MAX_ID_LENGTH:
            raise InvalidArgument(f"events[{i}].event_id must have 1..{MAX_ID_LENGTH} characters")
        if not event.user_ref.strip() or len(event.user_ref) > MAX_REF_LENGTH:
            raise InvalidArgument(f"events[{i}].user_ref must have 1..{MAX_REF_LENGTH} characters")
        if not event.item_id:
            raise InvalidArgument(f"events[{i}].item_id must not be empty")
        if event.type == common_pb2.EVENT_TYPE_UNSPECIFIED:
            raise InvalidArgument(f"events[{i}].type must be set")
        if event.type not in common_pb2.EventType.values():
            raise InvalidArgument(f"events[{i}].type is not a known EventType")
        if event.quantity < 0:
            raise InvalidArgument(f"events[{i}].quantity must not be negative")
        timestamp = None
        if event.HasField("timestamp"):
            try:
                timestamp = event.timestamp.ToDatetime(tzinfo=UTC)
            except (ValueError, OverflowError):
                raise InvalidArgument(f"events[{i}].timestamp is out of range") from None
        events.append(
            ShopperEvent(
                event_id=event.event_id,
                user_ref=event.user_ref,
                item_id=event.item_id,
                type=_event_type(event.type),
                timestamp=timestamp,
                quantity=event.quantity or 1,
            )
        )
    return events


def build_response(outcome: Outcome, trace_id: str) -> orchestrator_pb2.RecommendResponse:
    response = orchestrator_pb2.RecommendResponse(versions=outcome.versions, trace_id=trace_id)
    for cand in outcome.items:
        features = cand.features
        response.items.append(
            orchestrator_pb2.Recommendation(
                item_id=cand.item_id,
                title=features.title if features else "",
                category_path=list(features.category_path) if features else [],
                price=features.price if features else 0.0,
                score=cand.score,
                relevance_score=cand.relevance,
                retrieval_score=cand.retrieval_score,
                stages=[stage_to_proto(s) for s in cand.stages],
                contributions=[
                    common_pb2.FeatureContribution(feature=c.feature, value=c.value)
                    for c in cand.contributions
                ],
            )
        )
    for d in outcome.degraded:
        response.degraded_stages.append(
            orchestrator_pb2.DegradedStage(stage=stage_to_proto(d.stage), reason=d.reason.value)
        )
    return response


class RecommendationServicer(orchestrator_pb2_grpc.RecommendationServiceServicer):
    """The public API. Load shedding is a counter, not a queue: the event loop is single
    threaded, so checking and incrementing it cannot race."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        pipeline: Pipeline,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._clock = clock
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def Recommend(
        self, request: orchestrator_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.RecommendResponse:
        metrics = self._pipeline.metrics
        if self._in_flight >= self._settings.max_in_flight:
            metrics.shed.add(1, {"rpc": "Recommend"})
            raise ResourceExhausted("too many requests in flight; retry with backoff")
        started = self._clock()
        outcome_label = "ok"
        self._in_flight += 1
        try:
            query = validate_recommend(request, self._settings)
            budget = Budget.from_context(context, self._settings.default_deadline_s, self._clock)
            outcome = await _within(budget, self._pipeline.recommend(query, budget))
            if outcome.degraded:
                outcome_label = "degraded"
            return build_response(outcome, current_trace_id())
        except ServiceError as exc:
            outcome_label = exc.code.name.lower()
            raise
        finally:
            self._in_flight -= 1
            metrics.requests.add(1, {"rpc": "Recommend", "outcome": outcome_label})
            metrics.latency.record(self._clock() - started, {"rpc": "Recommend"})

    async def LogEvents(
        self, request: orchestrator_pb2.LogEventsRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.LogEventsResponse:
        metrics = self._pipeline.metrics
        started = self._clock()
        outcome_label = "ok"
        try:
            events = validate_events(request, self._settings)
            budget = Budget.from_context(context, self._settings.default_deadline_s, self._clock)
            result = await self._pipeline.log_events(events, budget)
            return orchestrator_pb2.LogEventsResponse(
                accepted_count=result.accepted, duplicate_count=result.duplicates
            )
        except ServiceError as exc:
            outcome_label = exc.code.name.lower()
            raise
        finally:
            metrics.requests.add(1, {"rpc": "LogEvents", "outcome": outcome_label})
            metrics.latency.record(self._clock() - started, {"rpc": "LogEvents"})
