import datetime

from shared.gen.acme.recsys.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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
    __slots__ = ("user_ref", "k", "context", "diversity", "excluded_item_ids", "exclude_purchased")
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
    user_ref: str
    k: int
    context: _containers.ScalarMap[str, str]
    diversity: DiversitySettings
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    exclude_purchased: bool
    def __init__(self, user_ref: _Optional[str] = ..., k: _Optional[int] = ..., context: _Optional[_Mapping[str, str]] = ..., diversity: _Optional[_Union[DiversitySettings, _Mapping]] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ..., exclude_purchased: _Optional[bool] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("item_id", "title", "category_path", "price", "score", "relevance_score", "retrieval_score", "stages", "contributions")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_SCORE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    category_path: _containers.RepeatedScalarFieldContainer[str]
    price: float
    score: float
    relevance_score: float
    retrieval_score: float
    stages: _containers.RepeatedScalarFieldContainer[_common_pb2.Stage]
    contributions: _containers.RepeatedCompositeFieldContainer[_common_pb2.FeatureContribution]
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., category_path: _Optional[_Iterable[str]] = ..., price: _Optional[float] = ..., score: _Optional[float] = ..., relevance_score: _Optional[float] = ..., retrieval_score: _Optional[float] = ..., stages: _Optional[_Iterable[_Union[_common_pb2.Stage, str]]] = ..., contributions: _Optional[_Iterable[_Union[_common_pb2.FeatureContribution, _Mapping]]] = ...) -> None: ...

class DegradedStage(_message.Message):
    __slots__ = ("stage", "reason")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    stage: _common_pb2.Stage
    reason: str
    def __init__(self, stage: _Optional[_Union[_common_pb2.Stage, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
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

class ShopperEvent(_message.Message):
    __slots__ = ("event_id", "user_ref", "item_id", "type", "timestamp", "quantity")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_REF_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_ref: str
    item_id: str
    type: _common_pb2.EventType
    timestamp: _timestamp_pb2.Timestamp
    quantity: int
    def __init__(self, event_id: _Optional[str] = ..., user_ref: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.EventType, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quantity: _Optional[int] = ...) -> None: ...

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
