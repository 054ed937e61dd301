import datetime

from shared.gen.acme.recsys.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ShopperContext(_message.Message):
    __slots__ = ("recent_item_titles", "recent_categories", "category_affinities", "recent_item_prices", "item_interactions", "request_time")
    RECENT_ITEM_TITLES_FIELD_NUMBER: _ClassVar[int]
    RECENT_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_AFFINITIES_FIELD_NUMBER: _ClassVar[int]
    RECENT_ITEM_PRICES_FIELD_NUMBER: _ClassVar[int]
    ITEM_INTERACTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TIME_FIELD_NUMBER: _ClassVar[int]
    recent_item_titles: _containers.RepeatedScalarFieldContainer[str]
    recent_categories: _containers.RepeatedScalarFieldContainer[str]
    category_affinities: _containers.RepeatedCompositeFieldContainer[_common_pb2.CategoryAffinity]
    recent_item_prices: _containers.RepeatedScalarFieldContainer[float]
    item_interactions: _containers.RepeatedCompositeFieldContainer[_common_pb2.ItemInteraction]
    request_time: _timestamp_pb2.Timestamp
    def __init__(self, recent_item_titles: _Optional[_Iterable[str]] = ..., recent_categories: _Optional[_Iterable[str]] = ..., category_affinities: _Optional[_Iterable[_Union[_common_pb2.CategoryAffinity, _Mapping]]] = ..., recent_item_prices: _Optional[_Iterable[float]] = ..., item_interactions: _Optional[_Iterable[_Union[_common_pb2.ItemInteraction, _Mapping]]] = ..., request_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CandidateItem(_message.Message):
    __slots__ = ("item_id", "title", "category_path", "price", "retrieval_score", "dp_popularity")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    DP_POPULARITY_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    category_path: _containers.RepeatedScalarFieldContainer[str]
    price: float
    retrieval_score: float
    dp_popularity: float
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., category_path: _Optional[_Iterable[str]] = ..., price: _Optional[float] = ..., retrieval_score: _Optional[float] = ..., dp_popularity: _Optional[float] = ...) -> None: ...

class ScoreCandidatesRequest(_message.Message):
    __slots__ = ("context", "candidates", "ranking_model")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RANKING_MODEL_FIELD_NUMBER: _ClassVar[int]
    context: ShopperContext
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateItem]
    ranking_model: str
    def __init__(self, context: _Optional[_Union[ShopperContext, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[CandidateItem, _Mapping]]] = ..., ranking_model: _Optional[str] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score", "relevance", "contributions")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTIONS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    relevance: float
    contributions: _containers.RepeatedCompositeFieldContainer[_common_pb2.FeatureContribution]
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., relevance: _Optional[float] = ..., contributions: _Optional[_Iterable[_Union[_common_pb2.FeatureContribution, _Mapping]]] = ...) -> None: ...

class ScoreCandidatesResponse(_message.Message):
    __slots__ = ("scores", "model_name", "model_version", "backend", "ranking_model_version")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    RANKING_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    model_name: str
    model_version: str
    backend: str
    ranking_model_version: str
    def __init__(self, scores: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., backend: _Optional[str] = ..., ranking_model_version: _Optional[str] = ...) -> None: ...
