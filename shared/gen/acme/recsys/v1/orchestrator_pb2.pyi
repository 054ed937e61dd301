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

class ReasonKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_KIND_UNSPECIFIED: _ClassVar[ReasonKind]
    REASON_KIND_SIMILAR_TO_HISTORY_ITEM: _ClassVar[ReasonKind]
    REASON_KIND_BOUGHT_BEFORE: _ClassVar[ReasonKind]
    REASON_KIND_POPULAR_IN_CATEGORY: _ClassVar[ReasonKind]
    REASON_KIND_PICKED_FOR_VARIETY: _ClassVar[ReasonKind]
    REASON_KIND_NEW_ITEM: _ClassVar[ReasonKind]
    REASON_KIND_COLD_START_POPULAR: _ClassVar[ReasonKind]
    REASON_KIND_IN_FAVOURITE_CATEGORY: _ClassVar[ReasonKind]
    REASON_KIND_MATCHES_HISTORY: _ClassVar[ReasonKind]
    REASON_KIND_POPULAR_FALLBACK: _ClassVar[ReasonKind]
    REASON_KIND_CATALOG_ORDER: _ClassVar[ReasonKind]
    REASON_KIND_SIMILAR_TO_ITEM: _ClassVar[ReasonKind]
REASON_KIND_UNSPECIFIED: ReasonKind
REASON_KIND_SIMILAR_TO_HISTORY_ITEM: ReasonKind
REASON_KIND_BOUGHT_BEFORE: ReasonKind
REASON_KIND_POPULAR_IN_CATEGORY: ReasonKind
REASON_KIND_PICKED_FOR_VARIETY: ReasonKind
REASON_KIND_NEW_ITEM: ReasonKind
REASON_KIND_COLD_START_POPULAR: ReasonKind
REASON_KIND_IN_FAVOURITE_CATEGORY: ReasonKind
REASON_KIND_MATCHES_HISTORY: ReasonKind
REASON_KIND_POPULAR_FALLBACK: ReasonKind
REASON_KIND_CATALOG_ORDER: ReasonKind
REASON_KIND_SIMILAR_TO_ITEM: ReasonKind

class DiversitySettings(_message.Message):
    __slots__ = ("method", "tradeoff", "max_per_category")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TRADEOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    method: _common_pb2.RerankMethod
    tradeoff: float
    max_per_category: int
    def __init__(self, method: _Optional[_Union[_common_pb2.RerankMethod, str]] = ..., tradeoff: _Optional[float] = ..., max_per_category: _Optional[int] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("user_ref", "k", "context", "diversity", "excluded_item_ids", "exclude_purchased", "filters", "page_token")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_REF_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PURCHASED_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_ref: str
    k: int
    context: _containers.ScalarMap[str, str]
    diversity: DiversitySettings
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_purchased: bool
    filters: _common_pb2.Filters
    page_token: str
    def __init__(self, user_ref: _Optional[str] = ..., k: _Optional[int] = ..., context: _Optional[_Mapping[str, str]] = ..., diversity: _Optional[_Union[DiversitySettings, _Mapping]] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ..., exclude_purchased: _Optional[bool] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ..., page_token: _Optional[str] = ...) -> None: ...

class RecommendationReason(_message.Message):
    __slots__ = ("kind", "text", "history_item_id", "category")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    kind: ReasonKind
    text: str
    history_item_id: str
    category: str
    def __init__(self, kind: _Optional[_Union[ReasonKind, str]] = ..., text: _Optional[str] = ..., history_item_id: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("item_id", "title", "category_path", "price", "score", "relevance_score", "retrieval_score", "stages", "reasons", "contributions")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_SCORE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    category_path: _containers.RepeatedScalarFieldContainer[str]
    price: float
    score: float
    relevance_score: float
    retrieval_score: float
    stages: _containers.RepeatedScalarFieldContainer[_common_pb2.Stage]
    reasons: _containers.RepeatedCompositeFieldContainer[RecommendationReason]
    contributions: _containers.RepeatedCompositeFieldContainer[_common_pb2.FeatureContribution]
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., category_path: _Optional[_Iterable[str]] = ..., price: _Optional[float] = ..., score: _Optional[float] = ..., relevance_score: _Optional[float] = ..., retrieval_score: _Optional[float] = ..., stages: _Optional[_Iterable[_Union[_common_pb2.Stage, str]]] = ..., reasons: _Optional[_Iterable[_Union[RecommendationReason, _Mapping]]] = ..., contributions: _Optional[_Iterable[_Union[_common_pb2.FeatureContribution, _Mapping]]] = ...) -> None: ...

class DegradedStage(_message.Message):
    __slots__ = ("stage", "reason")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    stage: _common_pb2.Stage
    reason: str
    def __init__(self, stage: _Optional[_Union[_common_pb2.Stage, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("items", "degraded_stages", "versions", "trace_id", "filtered_short", "filtered_out_count", "next_page_token", "recommendation_id", "experiment_assignments")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_STAGES_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    FILTERED_SHORT_FIELD_NUMBER: _ClassVar[int]
    FILTERED_OUT_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    degraded_stages: _containers.RepeatedCompositeFieldContainer[DegradedStage]
    versions: _containers.ScalarMap[str, str]
    trace_id: str
    filtered_short: bool
    filtered_out_count: int
    next_page_token: str
    recommendation_id: str
    experiment_assignments: _containers.RepeatedCompositeFieldContainer[_common_pb2.ExperimentAssignment]
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., degraded_stages: _Optional[_Iterable[_Union[DegradedStage, _Mapping]]] = ..., versions: _Optional[_Mapping[str, str]] = ..., trace_id: _Optional[str] = ..., filtered_short: _Optional[bool] = ..., filtered_out_count: _Optional[int] = ..., next_page_token: _Optional[str] = ..., recommendation_id: _Optional[str] = ..., experiment_assignments: _Optional[_Iterable[_Union[_common_pb2.ExperimentAssignment, _Mapping]]] = ...) -> None: ...

class ShopperEvent(_message.Message):
    __slots__ = ("event_id", "user_ref", "item_id", "type", "timestamp", "quantity", "recommendation_id", "position")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_REF_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_ref: str
    item_id: str
    type: _common_pb2.EventType
    timestamp: _timestamp_pb2.Timestamp
    quantity: int
    recommendation_id: str
    position: int
    def __init__(self, event_id: _Optional[str] = ..., user_ref: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.EventType, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quantity: _Optional[int] = ..., recommendation_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class LogEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ShopperEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[ShopperEvent, _Mapping]]] = ...) -> None: ...

class LogEventsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ...) -> None: ...

class SimilarItemsRequest(_message.Message):
    __slots__ = ("item_id", "k", "diversity", "excluded_item_ids", "filters")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    DIVERSITY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    k: int
    diversity: DiversitySettings
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    filters: _common_pb2.Filters
    def __init__(self, item_id: _Optional[str] = ..., k: _Optional[int] = ..., diversity: _Optional[_Union[DiversitySettings, _Mapping]] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ...) -> None: ...

class SimilarItemsResponse(_message.Message):
    __slots__ = ("items", "degraded_stages", "versions", "trace_id")
    class VersionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_STAGES_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Recommendation]
    degraded_stages: _containers.RepeatedCompositeFieldContainer[DegradedStage]
    versions: _containers.ScalarMap[str, str]
    trace_id: str
    def __init__(self, items: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., degraded_stages: _Optional[_Iterable[_Union[DegradedStage, _Mapping]]] = ..., versions: _Optional[_Mapping[str, str]] = ..., trace_id: _Optional[str] = ...) -> None: ...
