"""FeatureStoreService: validate -> role (in the bounded executor) -> response.

Reads go to ``FeatureQueries``, IngestEvents to ``EventIngest``, the catalog, the
contribution-bounded counts and the popularity write-back to ``FeatureAdmin``, served lists,
online metrics and experiment reports to ``OnlineMetrics``.

Size limits come from settings: a batch larger than its limit is RESOURCE_EXHAUSTED (the
request is well-formed but too big to serve in one call, split it), an out-of-range scalar is
INVALID_ARGUMENT. A database that cannot be reached is UNAVAILABLE, which callers may retry
(reads, and ingestion since it is idempotent by event id) or answer with a fallback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC
from functools import partial
from typing import TypeVar

import grpc
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import metrics, trace

from services.feature_store.admin import FeatureAdmin
from services.feature_store.config import FeatureStoreSettings
from services.feature_store.ingest import EventIngest
from services.feature_store.model import AggregateKind, Event, Item, ServedList, UserFeatures
from services.feature_store.online_metrics import (
    RATES,
    Difference,
    MetricRow,
    OnlineMetrics,
)
from services.feature_store.queries import FeatureQueries
from shared.errors import InvalidArgument, ResourceExhausted, Unavailable
from shared.event_window import window_from_proto
from shared.gen.acme.recsys.v1 import common_pb2, feature_store_pb2, feature_store_pb2_grpc
from shared.peer_auth import PrivilegedCallers

SERVICE_NAME = "acme.recsys.v1.FeatureStoreService"

T = TypeVar("T")
log = logging.getLogger(__name__)

EVENT_TYPES = {
    common_pb2.EVENT_TYPE_VIEW: "view",
    common_pb2.EVENT_TYPE_ADD_TO_CART: "add_to_cart",
    common_pb2.EVENT_TYPE_PURCHASE: "purchase",
}
AGGREGATE_KINDS = {
    feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY: AggregateKind.ITEM_POPULARITY,
    feature_store_pb2.AGGREGATE_KIND_CATEGORY_TREND: AggregateKind.CATEGORY_TREND,
}
# Connection-level failures: the database is down, restarting, or every pooled connection is
# busy. Anything else (a constraint we did not expect) stays INTERNAL.
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def _limit(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise ResourceExhausted(f"{name} has {size} entries; at most {limit} per call")


def item_to_proto(item: Item) -> common_pb2.ItemFeatures:
    return common_pb2.ItemFeatures(
        item_id=item.item_id,
        title=item.title,
        category_path=list(item.category_path),
        price=item.price,
        embedding_version=item.embedding_version,
        dp_popularity=item.dp_popularity,
        available=True if item.available is None else item.available,
    )


def event_from_proto(index: int, event: common_pb2.Event) -> Event:
    """The domain event; an unset timestamp becomes None so the store names the field."""
    timestamp = None
    if event.HasField("timestamp"):
        try:
            timestamp = event.timestamp.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise InvalidArgument(f"events[{index}].timestamp is out of range") from None
    return Event(
        event_id=event.event_id,
        user_id=event.user_id,
        item_id=event.item_id,
        event_type=EVENT_TYPES.get(event.type, ""),
        timestamp=timestamp,
        quantity=event.quantity,
        recommendation_id=event.recommendation_id,
        position=event.position,
    )


def served_list_from_proto(index: int, served: feature_store_pb2.ServedList) -> ServedList:
    served_at = None
    if served.HasField("served_time"):
        try:
            served_at = served.served_time.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise InvalidArgument(f"served_lists[{index}].served_time is out of range") from None
    return ServedList(
        recommendation_id=served.recommendation_id,
        served_at=served_at,
        method=served.method,
        item_count=served.item_count,
        assignments=tuple((a.experiment, a.variant) for a in served.assignments),
    )


def metric_row_to_proto(row: MetricRow) -> feature_store_pb2.MetricRow:
    rates = {}
    for name in RATES:
        rate = row.rate(name)
        low, high = rate.interval
        rates[name] = feature_store_pb2.RateEstimate(
            count=rate.count, rate=rate.rate, ci_low=low, ci_high=high
        )
    return feature_store_pb2.MetricRow(
        key=row.key, impressions=row.impressions, served_lists=row.served_lists, **rates
    )


def difference_to_proto(d: Difference) -> feature_store_pb2.RateDifference:
    return feature_store_pb2.RateDifference(difference=d.difference, ci_low=d.low, ci_high=d.high)


def user_features_to_proto(f: UserFeatures) -> common_pb2.UserFeatures:
    """The store's derived features of one user as the API message."""
    features = common_pb2.UserFeatures(
        user_id=f.user_id,
        recent_item_ids=f.recent_item_ids,
        category_affinities=[
            common_pb2.CategoryAffinity(category=c, score=s) for c, s in f.category_affinities
        ],
        event_count=f.event_count,
        purchase_count=f.purchase_count,
        purchased_item_ids=f.purchased_item_ids,
    )
    for x in f.item_interactions:
        seen = Timestamp()
        seen.FromDatetime(x.last_event_time)
        features.item_interactions.append(
            common_pb2.ItemInteraction(
                item_id=x.item_id,
                event_count=x.event_count,
                purchased_quantity=x.purchased_quantity,
                last_event_time=seen,
            )
        )
    if f.last_event_time is not None:
        stamp = Timestamp()
        stamp.FromDatetime(f.last_event_time)
        features.last_event_time.CopyFrom(stamp)
    return features


class FeatureStoreServicer(feature_store_pb2_grpc.FeatureStoreServiceServicer):
    """Every RPC of FeatureStoreService over the store's three roles."""

    def __init__(
        self,
        settings: FeatureStoreSettings,
        queries: FeatureQueries,
        ingest: EventIngest,
        admin: FeatureAdmin,
        executor: Executor,
        *,
        online: OnlineMetrics,
    ) -> None:
        self._settings = settings
        self._online = online
        self._queries = queries
        self._ingest = ingest
        self._admin = admin
        self._executor = executor
        meter = metrics.get_meter("services.feature_store")
        self._events_counter = meter.create_counter(
            "feature_store.events", unit="{event}", description="Events received, by outcome."
        )
        # Raw aggregates and DP releases are the privacy gateway's business alone: the counts
        # are not yet noised, and a forged release would steer the popularity fallback.
        self._privileged = PrivilegedCallers(
            settings.privileged_callers,
            dev_allow_loopback=settings.dev_allow_loopback_privileged,
            denied_message="this method is reserved for the privacy gateway",
            methods="GetContributionBoundedCounts and SetItemPopularity",
        )

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except _UNAVAILABLE as exc:
            trace.get_current_span().set_attribute("db.error", type(exc).__name__)
            raise Unavailable("the feature store database is unavailable") from None

    async def GetUserFeatures(
        self, request: feature_store_pb2.GetUserFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_store_pb2.GetUserFeaturesResponse:
        n = request.max_recent_items or self._settings.default_recent_items
        if n < 0 or n > self._settings.max_recent_items:
            raise InvalidArgument(
                f"max_recent_items must be between 0 and {self._settings.max_recent_items}"
            )
        f = await self._run(partial(self._queries.get_user_features, request.user_id, n))
        features = user_features_to_proto(f)
        span = trace.get_current_span()
        span.set_attribute("feature_store.known_user", f.known)
        span.set_attribute("feature_store.recent_items", len(f.recent_item_ids))
        return feature_store_pb2.GetUserFeaturesResponse(features=features, known_user=f.known)

    async def GetItemFeatures(
        self, request: feature_store_pb2.GetItemFeaturesRequest, context: grpc.aio.ServicerContext
    ) -> feature_store_pb2.GetItemFeaturesResponse:
        _limit("item_ids", len(request.item_ids), self._settings.max_item_batch)
        lookup = await self._run(partial(self._queries.get_item_features, list(request.item_ids)))
        span = trace.get_current_span()
        span.set_attribute("feature_store.items_requested", len(request.item_ids))
        span.set_attribute("feature_store.items_missing", len(lookup.missing_item_ids))
        return feature_store_pb2.GetItemFeaturesResponse(
            items=[item_to_proto(it) for it in lookup.items],
            missing_item_ids=lookup.missing_item_ids,
        )

    async def IngestEvents(
        self, request: feature_store_pb2.IngestEventsRequest, context: grpc.aio.ServicerContext
    ) -> feature_store_pb2.IngestEventsResponse:
        _limit("events", len(request.events), self._settings.max_events_per_call)
        batch = [event_from_proto(i, e) for i, e in enumerate(request.events)]
        result = await self._run(partial(self._ingest.ingest_events, batch))
        self._events_counter.add(result.accepted, {"outcome": "accepted"})
        self._events_counter.add(result.duplicates, {"outcome": "duplicate"})
        span = trace.get_current_span()
        span.set_attribute("feature_store.events_accepted", result.accepted)
        span.set_attribute("feature_store.events_duplicate", result.duplicates)
        return feature_store_pb2.IngestEventsResponse(
            accepted_count=result.accepted, duplicate_count=result.duplicates
        )

    async def LoadCatalog(
        self, request: feature_store_pb2.LoadCatalogRequest, context: grpc.aio.ServicerContext
    ) -> feature_store_pb2.LoadCatalogResponse:
        _limit("items", len(request.items), self._settings.max_catalog_items_per_call)
        catalog = [
            Item(
                item_id=it.item_id,
                title=it.title,
                category_path=tuple(it.category_path),
                price=it.price,
                embedding_version=it.embedding_version,
                available=it.available if it.HasField("available") else None,
            )
            for it in request.items
        ]
        result = await self._run(partial(self._admin.load_catalog, catalog))
        trace.get_current_span().set_attribute("feature_store.items_loaded", len(catalog))
        return feature_store_pb2.LoadCatalogResponse(
            inserted_count=result.inserted, updated_count=result.updated
        )

    async def SetItemAvailability(
        self,
        request: feature_store_pb2.SetItemAvailabilityRequest,
        context: grpc.aio.ServicerContext,
    ) -> feature_store_pb2.SetItemAvailabilityResponse:
        _limit("item_ids", len(request.item_ids), self._settings.max_item_batch)
        result = await self._run(
            partial(self._admin.set_item_availability, list(request.item_ids), request.available)
        )
        span = trace.get_current_span()
        span.set_attribute("feature_store.items_updated", result.updated)
        span.set_attribute("feature_store.available", request.available)
        return feature_store_pb2.SetItemAvailabilityResponse(
            updated_count=result.updated, missing_item_ids=result.missing_item_ids
        )

    async def GetPopularItems(
        self, request: feature_store_pb2.GetPopularItemsRequest, context: grpc.aio.ServicerContext
    ) -> feature_store_pb2.GetPopularItemsResponse:
        if request.limit < 1 or request.limit > self._settings.max_popular_items:
            raise InvalidArgument(f"limit must be between 1 and {self._settings.max_popular_items}")
        excluded = list(request.excluded_item_ids)
        _limit("excluded_item_ids", len(excluded), self._settings.max_item_batch)
        popular = await self._run(partial(self._queries.get_popular_items, request.limit, excluded))
        response = feature_store_pb2.GetPopularItemsResponse(
            items=[item_to_proto(it) for it in popular.items], release_id=popular.release_id
        )
        if popular.release_time is not None:
            response.release_time.FromDatetime(popular.release_time)
        return response

    async def GetContributionBoundedCounts(
        self,
        request: feature_store_pb2.GetContributionBoundedCountsRequest,
        context: grpc.aio.ServicerContext,
    ) -> feature_store_pb2.GetContributionBoundedCountsResponse:
        self._privileged.require(context, "GetContributionBoundedCounts")
        kind = AGGREGATE_KINDS.get(request.kind)
        if kind is None:
            raise InvalidArgument("kind must be ITEM_POPULARITY or CATEGORY_TREND")
        bound = request.max_contributions_per_user
        if bound < 1 or bound > self._settings.max_contributions_limit:
            raise InvalidArgument(
                "max_contributions_per_user must be between 1 and "
                f"{self._settings.max_contributions_limit}"
            )
        window = window_from_proto(request.event_window, present=request.HasField("event_window"))
        counts = await self._run(
            partial(self._admin.contribution_bounded_counts, kind, bound, window)
        )
        trace.get_current_span().set_attribute("feature_store.keys", len(counts))
        return feature_store_pb2.GetContributionBoundedCountsResponse(
            counts=[feature_store_pb2.KeyCount(key=k, count=float(n)) for k, n in counts.items()]
        )

    async def SetItemPopularity(
        self,
        request: feature_store_pb2.SetItemPopularityRequest,
        context: grpc.aio.ServicerContext,
    ) -> feature_store_pb2.SetItemPopularityResponse:
        self._privileged.require(context, "SetItemPopularity")
        _limit("popularities", len(request.popularities), self._settings.max_popularities_per_call)
        values = [(p.key, p.count) for p in request.popularities]
        updated = await self._run(
            partial(self._admin.set_item_popularity, request.release_id, values)
        )
        trace.get_current_span().set_attribute("feature_store.items_updated", updated)
        return feature_store_pb2.SetItemPopularityResponse(updated_count=updated)

    async def RecordServedLists(
        self,
        request: feature_store_pb2.RecordServedListsRequest,
        context: grpc.aio.ServicerContext,
    ) -> feature_store_pb2.RecordServedListsResponse:
        _limit("served_lists", len(request.served_lists), self._settings.max_events_per_call)
        batch = [served_list_from_proto(i, s) for i, s in enumerate(request.served_lists)]
        result = await self._run(partial(self._online.record_served_lists, batch))
        trace.get_current_span().set_attribute("feature_store.served_lists", result.accepted)
        return feature_store_pb2.RecordServedListsResponse(
            accepted_count=result.accepted, duplicate_count=result.duplicates
        )

    async def GetOnlineMetrics(
        self,
        request: feature_store_pb2.GetOnlineMetricsRequest,
        context: grpc.aio.ServicerContext,
    ) -> feature_store_pb2.GetOnlineMetricsResponse:
        window = window_from_proto(request.window, present=True, field="window")
        assert window is not None
        report = await self._run(partial(self._online.online_metrics, window))
        return feature_store_pb2.GetOnlineMetricsResponse(
            by_position=[metric_row_to_proto(r) for r in report.by_position],
            by_method=[metric_row_to_proto(r) for r in report.by_method],
            by_variant=[metric_row_to_proto(r) for r in report.by_variant],
            total=metric_row_to_proto(report.total),
            unmatched_event_count=report.unmatched_events,
        )

    async def GetExperimentReport(
        self,
        request: feature_store_pb2.GetExperimentReportRequest,
        context: grpc.aio.ServicerContext,
    ) -> feature_store_pb2.GetExperimentReportResponse:
        window = window_from_proto(request.window, present=True, field="window")
        assert window is not None
        report = await self._run(
            partial(
                self._online.experiment_report,
                request.experiment,
                window,
                request.control_variant,
            )
        )
        response = feature_store_pb2.GetExperimentReportResponse(
            experiment=report.experiment, control_variant=report.control_variant
        )
        for variant in report.variants:
            entry = response.variants.add(metrics=metric_row_to_proto(variant.metrics))
            for name, field_name in (
                ("clicks", "click_difference"),
                ("add_to_carts", "add_to_cart_difference"),
                ("purchases", "purchase_difference"),
            ):
                if name in variant.differences:
                    getattr(entry, field_name).CopyFrom(
                        difference_to_proto(variant.differences[name])
                    )
        return response
