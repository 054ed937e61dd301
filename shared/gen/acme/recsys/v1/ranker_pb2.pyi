from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ShopperContext(_message.Message):
    __slots__ = ("recent_item_titles", "recent_categories")
    RECENT_ITEM_TITLES_FIELD_NUMBER: _ClassVar[int]
    RECENT_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    recent_item_titles: _containers.RepeatedScalarFieldContainer[str]
    recent_categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recent_item_titles: _Optional[_Iterable[str]] = ..., recent_categories: _Optional[_Iterable[str]] = ...) -> None: ...

class CandidateItem(_message.Message):
    __slots__ = ("item_id", "title", "category_path", "price")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    title: str
    category_path: _containers.RepeatedScalarFieldContainer[str]
    price: float
    def __init__(self, item_id: _Optional[str] = ..., title: _Optional[str] = ..., category_path: _Optional[_Iterable[str]] = ..., price: _Optional[float] = ...) -> None: ...

class ScoreCandidatesRequest(_message.Message):
    __slots__ = ("context", "candidates")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    context: ShopperContext
    candidates: _containers.RepeatedCompositeFieldContainer[CandidateItem]
    def __init__(self, context: _Optional[_Union[ShopperContext, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[CandidateItem, _Mapping]]] = ...) -> None: ...

class ScoredItem(_message.Message):
    __slots__ = ("item_id", "score")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ScoreCandidatesResponse(_message.Message):
    __slots__ = ("scores", "model_name", "model_version", "backend")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[ScoredItem]
    model_name: str
    model_version: str
    backend: str
    def __init__(self, scores: _Optional[_Iterable[_Union[ScoredItem, _Mapping]]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...
