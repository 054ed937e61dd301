import datetime

from shared.gen.acme.recsys.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AggregateKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATE_KIND_UNSPECIFIED: _ClassVar[AggregateKind]
    AGGREGATE_KIND_ITEM_POPULARITY: _ClassVar[AggregateKind]
    AGGREGATE_KIND_CATEGORY_TREND: _ClassVar[AggregateKind]
AGGREGATE_KIND_UNSPECIFIED: AggregateKind
AGGREGATE_KIND_ITEM_POPULARITY: AggregateKind
AGGREGATE_KIND_CATEGORY_TREND: AggregateKind

class GetUserFeaturesRequest(_message.Message):
    __slots__ = ("user_id", "max_recent_items")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_RECENT_ITEMS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    max_recent_items: int
    def __init__(self, user_id: _Optional[str] = ..., max_recent_items: _Optional[int] = ...) -> None: ...

class GetUserFeaturesResponse(_message.Message):
    __slots__ = ("features", "known_user")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    KNOWN_USER_FIELD_NUMBER: _ClassVar[int]
    features: _common_pb2.UserFeatures
    known_user: bool
    def __init__(self, features: _Optional[_Union[_common_pb2.UserFeatures, _Mapping]] = ..., known_user: _Optional[bool] = ...) -> None: ...

class GetItemFeaturesRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetItemFeaturesResponse(_message.Message):
    __slots__ = ("items", "missing_item_ids")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MISSING_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.ItemFeatures]
    missing_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[_Union[_common_pb2.ItemFeatures, _Mapping]]] = ..., missing_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class IngestEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ...) -> None: ...

class IngestEventsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...

class LoadCatalogRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.ItemFeatures]
    def __init__(self, items: _Optional[_Iterable[_Union[_common_pb2.ItemFeatures, _Mapping]]] = ...) -> None: ...

class LoadCatalogResponse(_message.Message):
    __slots__ = ("inserted_count", "updated_count")
    INSERTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    inserted_count: int
    updated_count: int
    def __init__(self, inserted_count: _Optional[int] = ..., updated_count: _Optional[int] = ...) -> None: ...

class SetItemAvailabilityRequest(_message.Message):
    __slots__ = ("item_ids", "available")
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    available: bool
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ..., available: _Optional[bool] = ...) -> None: ...

class SetItemAvailabilityResponse(_message.Message):
    __slots__ = ("updated_count", "missing_item_ids")
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISSING_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    updated_count: int
    missing_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, updated_count: _Optional[int] = ..., missing_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetPopularItemsRequest(_message.Message):
    __slots__ = ("limit", "excluded_item_ids")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, limit: _Optional[int] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetPopularItemsResponse(_message.Message):
    __slots__ = ("items", "release_id", "release_time")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_TIME_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_common_pb2.ItemFeatures]
    release_id: str
    release_time: _timestamp_pb2.Timestamp
    def __init__(self, items: _Optional[_Iterable[_Union[_common_pb2.ItemFeatures, _Mapping]]] = ..., release_id: _Optional[str] = ..., release_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetContributionBoundedCountsRequest(_message.Message):
    __slots__ = ("kind", "max_contributions_per_user", "event_window")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTRIBUTIONS_PER_USER_FIELD_NUMBER: _ClassVar[int]
    EVENT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    kind: AggregateKind
    max_contributions_per_user: int
    event_window: EventWindow
    def __init__(self, kind: _Optional[_Union[AggregateKind, str]] = ..., max_contributions_per_user: _Optional[int] = ..., event_window: _Optional[_Union[EventWindow, _Mapping]] = ...) -> None: ...

class EventWindow(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KeyCount(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: float
    def __init__(self, key: _Optional[str] = ..., count: _Optional[float] = ...) -> None: ...

class GetContributionBoundedCountsResponse(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[KeyCount]
    def __init__(self, counts: _Optional[_Iterable[_Union[KeyCount, _Mapping]]] = ...) -> None: ...

class SetItemPopularityRequest(_message.Message):
    __slots__ = ("release_id", "popularities")
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    POPULARITIES_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    popularities: _containers.RepeatedCompositeFieldContainer[KeyCount]
    def __init__(self, release_id: _Optional[str] = ..., popularities: _Optional[_Iterable[_Union[KeyCount, _Mapping]]] = ...) -> None: ...

class SetItemPopularityResponse(_message.Message):
    __slots__ = ("updated_count",)
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    updated_count: int
    def __init__(self, updated_count: _Optional[int] = ...) -> None: ...

class ServedList(_message.Message):
    __slots__ = ("recommendation_id", "served_time", "method", "item_count", "assignments")
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVED_TIME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    recommendation_id: str
    served_time: _timestamp_pb2.Timestamp
    method: str
    item_count: int
    assignments: _containers.RepeatedCompositeFieldContainer[_common_pb2.ExperimentAssignment]
    def __init__(self, recommendation_id: _Optional[str] = ..., served_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., method: _Optional[str] = ..., item_count: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[_common_pb2.ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class RecordServedListsRequest(_message.Message):
    __slots__ = ("served_lists",)
    SERVED_LISTS_FIELD_NUMBER: _ClassVar[int]
    served_lists: _containers.RepeatedCompositeFieldContainer[ServedList]
    def __init__(self, served_lists: _Optional[_Iterable[_Union[ServedList, _Mapping]]] = ...) -> None: ...

class RecordServedListsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...

class RateEstimate(_message.Message):
    __slots__ = ("count", "rate", "ci_low", "ci_high")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    count: int
    rate: float
    ci_low: float
    ci_high: float
    def __init__(self, count: _Optional[int] = ..., rate: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ...) -> None: ...

class MetricRow(_message.Message):
    __slots__ = ("key", "impressions", "clicks", "add_to_carts", "purchases", "served_lists")
    KEY_FIELD_NUMBER: _ClassVar[int]
    IMPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    ADD_TO_CARTS_FIELD_NUMBER: _ClassVar[int]
    PURCHASES_FIELD_NUMBER: _ClassVar[int]
    SERVED_LISTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    impressions: int
    clicks: RateEstimate
    add_to_carts: RateEstimate
    purchases: RateEstimate
    served_lists: int
    def __init__(self, key: _Optional[str] = ..., impressions: _Optional[int] = ..., clicks: _Optional[_Union[RateEstimate, _Mapping]] = ..., add_to_carts: _Optional[_Union[RateEstimate, _Mapping]] = ..., purchases: _Optional[_Union[RateEstimate, _Mapping]] = ..., served_lists: _Optional[int] = ...) -> None: ...

class GetOnlineMetricsRequest(_message.Message):
    __slots__ = ("window",)
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    window: EventWindow
    def __init__(self, window: _Optional[_Union[EventWindow, _Mapping]] = ...) -> None: ...

class GetOnlineMetricsResponse(_message.Message):
    __slots__ = ("by_position", "by_method", "by_variant", "total", "unmatched_event_count")
    BY_POSITION_FIELD_NUMBER: _ClassVar[int]
    BY_METHOD_FIELD_NUMBER: _ClassVar[int]
    BY_VARIANT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNMATCHED_EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    by_position: _containers.RepeatedCompositeFieldContainer[MetricRow]
    by_method: _containers.RepeatedCompositeFieldContainer[MetricRow]
    by_variant: _containers.RepeatedCompositeFieldContainer[MetricRow]
    total: MetricRow
    unmatched_event_count: int
    def __init__(self, by_position: _Optional[_Iterable[_Union[MetricRow, _Mapping]]] = ..., by_method: _Optional[_Iterable[_Union[MetricRow, _Mapping]]] = ..., by_variant: _Optional[_Iterable[_Union[MetricRow, _Mapping]]] = ..., total: _Optional[_Union[MetricRow, _Mapping]] = ..., unmatched_event_count: _Optional[int] = ...) -> None: ...

class GetExperimentReportRequest(_message.Message):
    __slots__ = ("experiment", "window", "control_variant")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CONTROL_VARIANT_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    window: EventWindow
    control_variant: str
    def __init__(self, experiment: _Optional[str] = ..., window: _Optional[_Union[EventWindow, _Mapping]] = ..., control_variant: _Optional[str] = ...) -> None: ...

class RateDifference(_message.Message):
    __slots__ = ("difference", "ci_low", "ci_high")
    DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    difference: float
    ci_low: float
    ci_high: float
    def __init__(self, difference: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ...) -> None: ...

class VariantReport(_message.Message):
    __slots__ = ("metrics", "click_difference", "add_to_cart_difference", "purchase_difference")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CLICK_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    ADD_TO_CART_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    metrics: MetricRow
    click_difference: RateDifference
    add_to_cart_difference: RateDifference
    purchase_difference: RateDifference
    def __init__(self, metrics: _Optional[_Union[MetricRow, _Mapping]] = ..., click_difference: _Optional[_Union[RateDifference, _Mapping]] = ..., add_to_cart_difference: _Optional[_Union[RateDifference, _Mapping]] = ..., purchase_difference: _Optional[_Union[RateDifference, _Mapping]] = ...) -> None: ...

class GetExperimentReportResponse(_message.Message):
    __slots__ = ("experiment", "control_variant", "variants")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    CONTROL_VARIANT_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    control_variant: str
    variants: _containers.RepeatedCompositeFieldContainer[VariantReport]
    def __init__(self, experiment: _Optional[str] = ..., control_variant: _Optional[str] = ..., variants: _Optional[_Iterable[_Union[VariantReport, _Mapping]]] = ...) -> None: ...
