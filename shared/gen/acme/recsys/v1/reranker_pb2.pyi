from shared.gen.acme.recsys.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RerankCandidate(_message.Message):
    __slots__ = ("item_id", "relevance", "embedding", "category", "category_path")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    relevance: float
    embedding: _containers.RepeatedScalarFieldContainer[float]
    category: str
    category_path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, item_id: _Optional[str] = ..., relevance: _Optional[float] = ..., embedding: _Optional[_Iterable[float]] = ..., category: _Optional[str] = ..., category_path: _Optional[_Iterable[str]] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("candidates", "k", "method", "tradeoff", "max_per_category", "window_size", "category_cap_level")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TRADEOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CAP_LEVEL_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[RerankCandidate]
    k: int
    method: _common_pb2.RerankMethod
    tradeoff: float
    max_per_category: int
    window_size: int
    category_cap_level: int
    def __init__(self, candidates: _Optional[_Iterable[_Union[RerankCandidate, _Mapping]]] = ..., k: _Optional[int] = ..., method: _Optional[_Union[_common_pb2.RerankMethod, str]] = ..., tradeoff: _Optional[float] = ..., max_per_category: _Optional[int] = ..., window_size: _Optional[int] = ..., category_cap_level: _Optional[int] = ...) -> None: ...

class RerankedItem(_message.Message):
    __slots__ = ("item_id", "relevance", "selection_score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    SELECTION_SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    relevance: float
    selection_score: float
    def __init__(self, item_id: _Optional[str] = ..., relevance: _Optional[float] = ..., selection_score: _Optional[float] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("items", "method")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RerankedItem]
    method: _common_pb2.RerankMethod
    def __init__(self, items: _Optional[_Iterable[_Union[RerankedItem, _Mapping]]] = ..., method: _Optional[_Union[_common_pb2.RerankMethod, str]] = ...) -> None: ...
