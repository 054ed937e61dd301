from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CandidateSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CANDIDATE_SOURCE_UNSPECIFIED: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_TWO_TOWER: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_COLLABORATIVE: _ClassVar[CandidateSource]
    CANDIDATE_SOURCE_HISTORY: _ClassVar[CandidateSource]
CANDIDATE_SOURCE_UNSPECIFIED: CandidateSource
CANDIDATE_SOURCE_TWO_TOWER: CandidateSource
CANDIDATE_SOURCE_COLLABORATIVE: CandidateSource
CANDIDATE_SOURCE_HISTORY: CandidateSource

class SourceScore(_message.Message):
    __slots__ = ("source", "score", "rank")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    source: CandidateSource
    score: float
    rank: int
    def __init__(self, source: _Optional[_Union[CandidateSource, str]] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ...) -> None: ...

class UserHistory(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UserVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class RetrieveCandidatesRequest(_message.Message):
    __slots__ = ("history", "user_vector", "n", "excluded_item_ids", "include_embeddings")
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    USER_VECTOR_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    history: UserHistory
    user_vector: UserVector
    n: int
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    include_embeddings: bool
    def __init__(self, history: _Optional[_Union[UserHistory, _Mapping]] = ..., user_vector: _Optional[_Union[UserVector, _Mapping]] = ..., n: _Optional[int] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ..., include_embeddings: _Optional[bool] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("item_id", "score", "embedding", "sources", "source_scores")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SCORES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    embedding: _containers.RepeatedScalarFieldContainer[float]
    sources: _containers.RepeatedScalarFieldContainer[CandidateSource]
    source_scores: _containers.RepeatedCompositeFieldContainer[SourceScore]
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., embedding: _Optional[_Iterable[float]] = ..., sources: _Optional[_Iterable[_Union[CandidateSource, str]]] = ..., source_scores: _Optional[_Iterable[_Union[SourceScore, _Mapping]]] = ...) -> None: ...

class RetrieveCandidatesResponse(_message.Message):
    __slots__ = ("candidates", "index_version", "cold_start")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    COLD_START_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    index_version: str
    cold_start: bool
    def __init__(self, candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., index_version: _Optional[str] = ..., cold_start: _Optional[bool] = ...) -> None: ...

class GetItemEmbeddingsRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ItemEmbedding(_message.Message):
    __slots__ = ("item_id", "values")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, item_id: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class GetItemEmbeddingsResponse(_message.Message):
    __slots__ = ("embeddings", "missing_item_ids", "index_version")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MISSING_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[ItemEmbedding]
    missing_item_ids: _containers.RepeatedScalarFieldContainer[str]
    index_version: str
    def __init__(self, embeddings: _Optional[_Iterable[_Union[ItemEmbedding, _Mapping]]] = ..., missing_item_ids: _Optional[_Iterable[str]] = ..., index_version: _Optional[str] = ...) -> None: ...

class GetIndexInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIndexInfoResponse(_message.Message):
    __slots__ = ("index_version", "index_type", "item_count", "dimension", "live_item_count", "removed_item_count", "sources")
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    LIVE_ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    index_version: str
    index_type: str
    item_count: int
    dimension: int
    live_item_count: int
    removed_item_count: int
    sources: _containers.RepeatedScalarFieldContainer[CandidateSource]
    def __init__(self, index_version: _Optional[str] = ..., index_type: _Optional[str] = ..., item_count: _Optional[int] = ..., dimension: _Optional[int] = ..., live_item_count: _Optional[int] = ..., removed_item_count: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[CandidateSource, str]]] = ...) -> None: ...

class LoadIndexVersionRequest(_message.Message):
    __slots__ = ("index_version",)
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    index_version: str
    def __init__(self, index_version: _Optional[str] = ...) -> None: ...

class LoadIndexVersionResponse(_message.Message):
    __slots__ = ("previous_version", "index_version")
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    previous_version: str
    index_version: str
    def __init__(self, previous_version: _Optional[str] = ..., index_version: _Optional[str] = ...) -> None: ...

class GetSimilarItemsRequest(_message.Message):
    __slots__ = ("item_id", "n", "excluded_item_ids", "include_embeddings")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    n: int
    excluded_item_ids: _containers.RepeatedScalarFieldContainer[str]
    include_embeddings: bool
    def __init__(self, item_id: _Optional[str] = ..., n: _Optional[int] = ..., excluded_item_ids: _Optional[_Iterable[str]] = ..., include_embeddings: _Optional[bool] = ...) -> None: ...

class GetSimilarItemsResponse(_message.Message):
    __slots__ = ("candidates", "index_version")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    index_version: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., index_version: _Optional[str] = ...) -> None: ...

class LiveItem(_message.Message):
    __slots__ = ("item_id", "title_embedding")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title_embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, item_id: _Optional[str] = ..., title_embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class UpsertItemsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[LiveItem]
    def __init__(self, items: _Optional[_Iterable[_Union[LiveItem, _Mapping]]] = ...) -> None: ...

class UpsertItemsResponse(_message.Message):
    __slots__ = ("added_count", "updated_count", "restored_count", "index_version")
    ADDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESTORED_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    added_count: int
    updated_count: int
    restored_count: int
    index_version: str
    def __init__(self, added_count: _Optional[int] = ..., updated_count: _Optional[int] = ..., restored_count: _Optional[int] = ..., index_version: _Optional[str] = ...) -> None: ...

class RemoveItemsRequest(_message.Message):
    __slots__ = ("item_ids",)
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveItemsResponse(_message.Message):
    __slots__ = ("removed_count", "index_version")
    REMOVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    removed_count: int
    index_version: str
    def __init__(self, removed_count: _Optional[int] = ..., index_version: _Optional[str] = ...) -> None: ...
