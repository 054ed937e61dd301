"""RecommendationService: validate, shed load, run the pipeline, build the response.

The public API's edge: requests become domain values here and the pipeline's Outcome becomes
the response, so the pipeline never sees a protobuf message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import TypeVar

import grpc

from services.orchestrator.attribution import ServedListRecorder
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    EventType,
    ItemReason,
    Outcome,
    RecommendQuery,
    RerankMethod,
    ShopperEvent,
    SimilarQuery,
    Stage,
)
from services.orchestrator.paging import InvalidPageToken, Page, PageTokens, request_binding
from services.orchestrator.pipeline import Pipeline
from shared.deadline import Budget
from shared.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, ServiceError
from shared.filters import InvalidFilter, ItemFilter
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from shared.telemetry import current_trace_id

T = TypeVar("T")
log = logging.getLogger(__name__)

SERVICE_NAME = "acme.recsys.v1.RecommendationService"
MAX_REF_LENGTH = 256
MAX_ID_LENGTH = 128
MAX_RECOMMENDATION_ID_LENGTH = 64


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


def filter_from_proto(filters: common_pb2.Filters, field: str = "filters") -> ItemFilter:
    """The Filters message as the shared predicate, or InvalidArgument naming the bad part."""
    try:
        return ItemFilter.create(
            include_categories=[list(p.levels) for p in filters.include_categories],
            exclude_categories=[list(p.levels) for p in filters.exclude_categories],
            min_price=filters.min_price if filters.HasField("min_price") else None,
            max_price=filters.max_price if filters.HasField("max_price") else None,
            excluded_item_ids=filters.excluded_item_ids,
            field=field,
        )
    except InvalidFilter as exc:
        raise InvalidArgument(str(exc)) from None


def page_tokens(settings: OrchestratorSettings) -> PageTokens:
    """Page tokens signed with the configured key, or a random one per process (logged:
    its tokens die with the process and no other replica accepts them)."""
    if settings.page_token_key_file:
        key = Path(settings.page_token_key_file).read_bytes().strip()
    elif settings.page_token_key is not None:
        key = settings.page_token_key.get_secret_value().encode()
    else:
        log.warning("no page_token_key configured; page tokens are valid in this process only")
        key = secrets.token_bytes(32)
    return PageTokens(key, settings.page_token_ttl_s, settings.page_token_max_shown)


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
    if len(request.filters.excluded_item_ids) > settings.max_exclusions:
        raise InvalidArgument(
            f"filters.excluded_item_ids must hold at most {settings.max_exclusions} ids"
        )
    item_filter = filter_from_proto(request.filters)
    # No stage uses the context, so it is dropped here after this size check: never sent
    # to another service, stored or logged (see RecommendRequest.context).
    if len(request.context) > settings.max_context_fields:
        raise InvalidArgument(f"context must hold at most {settings.max_context_fields} fields")
    method, tradeoff, cap = _diversity(request, settings)
    return RecommendQuery(
        user_ref=request.user_ref,
        k=request.k,
        method=method,
        tradeoff=tradeoff,
        max_per_category=cap,
        excluded_item_ids=tuple(request.excluded_item_ids),
        exclude_purchased=request.exclude_purchased,
        filters=item_filter,
    )


def _diversity(
    request: orchestrator_pb2.RecommendRequest | orchestrator_pb2.SimilarItemsRequest,
    settings: OrchestratorSettings,
) -> tuple[RerankMethod, float, int]:
    """(method, trade-off, per-category cap) of a request's diversity settings."""
    diversity = request.diversity
    tradeoff = diversity.tradeoff if request.HasField("diversity") else settings.default_tradeoff
    if not 0.0 <= tradeoff <= 1.0:  # also rejects NaN
        raise InvalidArgument("diversity.tradeoff must be in [0, 1]")
    if diversity.max_per_category < 0:
        raise InvalidArgument("diversity.max_per_category must not be negative")
    if diversity.method not in common_pb2.RerankMethod.values():
        raise InvalidArgument("diversity.method is not a known RerankMethod")
    method = RerankMethod(common_pb2.RerankMethod.Name(diversity.method))
    return method, tradeoff, diversity.max_per_category


def validate_similar(
    request: orchestrator_pb2.SimilarItemsRequest, settings: OrchestratorSettings
) -> SimilarQuery:
    """The request as a SimilarQuery, or InvalidArgument naming the bad field."""
    if not request.item_id or len(request.item_id) > MAX_ID_LENGTH:
        raise InvalidArgument(f"item_id must have 1..{MAX_ID_LENGTH} characters")
    if not 1 <= request.k <= settings.max_k:
        raise InvalidArgument(f"k must be in [1, {settings.max_k}]")
    if len(request.excluded_item_ids) > settings.max_exclusions:
        raise InvalidArgument(f"excluded_item_ids must hold at most {settings.max_exclusions} ids")
    if len(request.filters.excluded_item_ids) > settings.max_exclusions:
        raise InvalidArgument(
            f"filters.excluded_item_ids must hold at most {settings.max_exclusions} ids"
        )
    method, tradeoff, cap = _diversity(request, settings)
    return SimilarQuery(
        item_id=request.item_id,
        k=request.k,
        method=method,
        tradeoff=tradeoff,
        max_per_category=cap,
        excluded_item_ids=tuple(request.excluded_item_ids),
        filters=filter_from_proto(request.filters),
    )


def _check_attribution(i: int, event: orchestrator_pb2.ShopperEvent) -> None:
    """The attribution fields' shape; the store checks the id's characters."""
    if len(event.recommendation_id) > MAX_RECOMMENDATION_ID_LENGTH:
        raise InvalidArgument(
            f"events[{i}].recommendation_id must have at most "
            f"{MAX_RECOMMENDATION_ID_LENGTH} characters"
        )
    if event.position < 0:
        raise InvalidArgument(f"events[{i}].position must not be negative")
    if event.position and not event.recommendation_id:
        raise InvalidArgument(f"events[{i}].position needs a recommendation_id")


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
        _check_attribution(i, event)
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
                recommendation_id=event.recommendation_id,
                position=event.position,
            )
        )
    return events


def reason_to_proto(reason: ItemReason) -> orchestrator_pb2.RecommendationReason:
    """One reason in the public API; the domain kind's value is the proto enum's name."""
    return orchestrator_pb2.RecommendationReason(
        kind=orchestrator_pb2.ReasonKind.Value(reason.kind.value),
        text=reason.text,
        history_item_id=reason.history_item_id,
        category=reason.category,
    )


def build_response(
    outcome: Outcome, trace_id: str, k: int = 0, next_page_token: str = ""
) -> orchestrator_pb2.RecommendResponse:
    """The response; ``filtered_short`` when fewer than ``k`` items are left."""
    response = orchestrator_pb2.RecommendResponse(
        versions=outcome.versions,
        trace_id=trace_id,
        filtered_short=len(outcome.items) < k,
        filtered_out_count=outcome.filtered_out,
        next_page_token=next_page_token,
        recommendation_id=outcome.recommendation_id,
        experiment_assignments=[
            common_pb2.ExperimentAssignment(experiment=e, variant=v) for e, v in outcome.assignments
        ],
    )
    _fill(response, outcome)
    return response


def build_similar_response(
    outcome: Outcome, trace_id: str
) -> orchestrator_pb2.SimilarItemsResponse:
    response = orchestrator_pb2.SimilarItemsResponse(versions=outcome.versions, trace_id=trace_id)
    _fill(response, outcome)
    return response


def _fill(
    response: orchestrator_pb2.RecommendResponse | orchestrator_pb2.SimilarItemsResponse,
    outcome: Outcome,
) -> None:
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
                reasons=[reason_to_proto(r) for r in cand.reasons],
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


@dataclasses.dataclass
class _Call:
    """One call's outcome label for the request metrics."""

    outcome: str = "ok"


class RecommendationServicer(orchestrator_pb2_grpc.RecommendationServiceServicer):
    """The public API. Load shedding is a counter, not a queue: the event loop is single
    threaded, so checking and incrementing it cannot race."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        pipeline: Pipeline,
        clock: Callable[[], float] = time.monotonic,
        pages: PageTokens | None = None,
        served_lists: ServedListRecorder | None = None,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._pages = pages or page_tokens(settings)
        self._served_lists = served_lists
        self._clock = clock
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def Recommend(
        self, request: orchestrator_pb2.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.RecommendResponse:
        with self._measured("Recommend", admit=True) as call:
            query = validate_recommend(request, self._settings)
            binding = request_binding(query)
            page = self._read_page(request.page_token, binding)
            query = dataclasses.replace(query, shown_item_ids=page.shown_item_ids)
            budget = Budget.from_context(context, self._settings.default_deadline_s, self._clock)
            outcome = await _within(budget, self._pipeline.recommend(query, budget))
            if outcome.degraded:
                call.outcome = "degraded"
            token = ""
            if outcome.items and len(outcome.items) >= query.k:
                # A short page had nothing more to show: no next page.
                token = self._pages.next_token(page, [c.item_id for c in outcome.items], binding)
            response = build_response(outcome, current_trace_id(), query.k, token)
            if self._served_lists is not None:
                # Queued only, off the request path: never delays nor fails the answer.
                self._served_lists.record(outcome)
            return response

    async def SimilarItems(
        self, request: orchestrator_pb2.SimilarItemsRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.SimilarItemsResponse:
        with self._measured("SimilarItems", admit=True) as call:
            query = validate_similar(request, self._settings)
            budget = Budget.from_context(context, self._settings.default_deadline_s, self._clock)
            outcome = await _within(budget, self._pipeline.similar(query, budget))
            if outcome.degraded:
                call.outcome = "degraded"
            return build_similar_response(outcome, current_trace_id())

    @contextlib.contextmanager
    def _measured(self, rpc: str, *, admit: bool) -> Iterator[_Call]:
        """Count and time one call by outcome; with ``admit``, shed it first when
        ``max_in_flight`` calls are already running (RESOURCE_EXHAUSTED)."""
        metrics = self._pipeline.metrics
        if admit and self._in_flight >= self._settings.max_in_flight:
            metrics.shed.add(1, {"rpc": rpc})
            raise ResourceExhausted("too many requests in flight; retry with backoff")
        call = _Call()
        started = self._clock()
        self._in_flight += int(admit)
        try:
            yield call
        except ServiceError as exc:
            call.outcome = exc.code.name.lower()
            raise
        finally:
            self._in_flight -= int(admit)
            metrics.requests.add(1, {"rpc": rpc, "outcome": call.outcome})
            metrics.latency.record(self._clock() - started, {"rpc": rpc})

    def _read_page(self, token: str, binding: str) -> Page:
        if not token:
            return self._pages.first_page()
        try:
            return self._pages.read(token, binding)
        except InvalidPageToken as exc:
            raise InvalidArgument(str(exc)) from None

    async def LogEvents(
        self, request: orchestrator_pb2.LogEventsRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.LogEventsResponse:
        with self._measured("LogEvents", admit=False):
            events = validate_events(request, self._settings)
            budget = Budget.from_context(context, self._settings.default_deadline_s, self._clock)
            result = await self._pipeline.log_events(events, budget)
            return orchestrator_pb2.LogEventsResponse(
                accepted_count=result.accepted, duplicate_count=result.duplicates
            )
