import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_VIEW: _ClassVar[EventType]
    EVENT_TYPE_ADD_TO_CART: _ClassVar[EventType]
    EVENT_TYPE_PURCHASE: _ClassVar[EventType]

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_PRIVACY_GATEWAY: _ClassVar[Stage]
    STAGE_FEATURE_STORE: _ClassVar[Stage]
    STAGE_RETRIEVAL: _ClassVar[Stage]
    STAGE_RANKER: _ClassVar[Stage]
    STAGE_RERANKER: _ClassVar[Stage]
    STAGE_POPULARITY: _ClassVar[Stage]

class RerankMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RERANK_METHOD_UNSPECIFIED: _ClassVar[RerankMethod]
    RERANK_METHOD_NONE: _ClassVar[RerankMethod]
    RERANK_METHOD_MMR: _ClassVar[RerankMethod]
    RERANK_METHOD_DPP: _ClassVar[RerankMethod]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_VIEW: EventType
EVENT_TYPE_ADD_TO_CART: EventType
EVENT_TYPE_PURCHASE: EventType
STAGE_UNSPECIFIED: Stage
STAGE_PRIVACY_GATEWAY: Stage
STAGE_FEATURE_STORE: Stage
STAGE_RETRIEVAL: Stage
STAGE_RANKER: Stage
STAGE_RERANKER: Stage
STAGE_POPULARITY: Stage
RERANK_METHOD_UNSPECIFIED: RerankMethod
RERANK_METHOD_NONE: RerankMethod
RERANK_METHOD_MMR: RerankMethod
RERANK_METHOD_DPP: RerankMethod

class Event(_message.Message):
    __slots__ = ("event_id", "user_id", "item_id", "type", "timestamp", "quantity", "recommendation_id", "position")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    item_id: str
    type: EventType
    timestamp: _timestamp_pb2.Timestamp
    quantity: int
    recommendation_id: str
    position: int
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., item_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quantity: _Optional[int] = ..., recommendation_id: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class ExperimentAssignment(_message.Message):
    __slots__ = ("experiment", "variant")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    variant: str
    def __init__(self, experiment: _Optional[str] = ..., variant: _Optional[str] = ...) -> None: ...

class ItemFeatures(_message.Message):
    __slots__ = ("item_id", "title", "category_path", "price", "embedding_version", "dp_popularity", "available")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_VERSION_FIELD_NUMBER: _ClassVar[int]
    DP_POPULARITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    category_path: _containers.RepeatedScalarFieldContainer[str]
    price: float
    embedding_version: str
    dp_popularity: float
    available: bool
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., category_path: _Optional[_Iterable[str]] = ..., price: _Optional[float] = ..., embedding_version: _Optional[str] = ..., dp_popularity: _Optional[float] = ..., available: _Optional[bool] = ...) -> None: ...

class CategoryAffinity(_message.Message):
    __slots__ = ("category", "score")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    category: str
    score: float
    def __init__(self, category: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class UserFeatures(_message.Message):
    __slots__ = ("user_id", "recent_item_ids", "category_affinities", "event_count", "purchase_count", "last_event_time", "purchased_item_ids", "item_interactions")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_AFFINITIES_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    PURCHASED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    ITEM_INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    recent_item_ids: _containers.RepeatedScalarFieldContainer[str]
    category_affinities: _containers.RepeatedCompositeFieldContainer[CategoryAffinity]
    event_count: int
    purchase_count: int
    last_event_time: _timestamp_pb2.Timestamp
    purchased_item_ids: _containers.RepeatedScalarFieldContainer[str]
    item_interactions: _containers.RepeatedCompositeFieldContainer[ItemInteraction]
    def __init__(self, user_id: _Optional[str] = ..., recent_item_ids: _Optional[_Iterable[str]] = ..., category_affinities: _Optional[_Iterable[_Union[CategoryAffinity, _Mapping]]] = ..., event_count: _Optional[int] = ..., purchase_count: _Optional[int] = ..., last_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., purchased_item_ids: _Optional[_Iterable[str]] = ..., item_interactions: _Optional[_Iterable[_Union[ItemInteraction, _Mapping]]] = ...) -> None: ...

class ItemInteraction(_message.Message):
    __slots__ = ("item_id", "event_count", "purchased_quantity", "last_event_time")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PURCHASED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    event_count: int
    purchased_quantity: int
    last_event_time: _timestamp_pb2.Timestamp
    def __init__(self, item_id: _Optional[str] = ..., event_count: _Optional[int] = ..., purchased_quantity: _Optional[int] = ..., last_event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FeatureContribution(_message.Message):
    __slots__ = ("feature", "value")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    feature: str
    value: float
    def __init__(self, feature: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class CategoryPrefix(_message.Message):
    __slots__ = ("levels",)
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, levels: _Optional[_Iterable[str]] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("include_categories", "exclude_categories", "min_price", "max_price", "excluded_item_ids")
    INCLUDE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    include_categories: _containers.RepeatedCompositeFieldContainer[CategoryPrefix]
    exclude_categories: _containers.RepeatedCompositeFieldContainer[CategoryPrefix]
    min_price: float
    max_price: float
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, include_categories: _Optional[_Iterable[_Union[CategoryPrefix, _Mapping]]] = ..., exclude_categories: _Optional[_Iterable[_Union[CategoryPrefix, _Mapping]]] = ..., min_price: _Optional[float] = ..., max_price: _Optional[float] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ...) -> None: ...
