from shared.gen.acme.recsys.v1 import feature_store_pb2 as _feature_store_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NoiseMechanism(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOISE_MECHANISM_UNSPECIFIED: _ClassVar[NoiseMechanism]
    NOISE_MECHANISM_LAPLACE: _ClassVar[NoiseMechanism]
    NOISE_MECHANISM_GAUSSIAN: _ClassVar[NoiseMechanism]
NOISE_MECHANISM_UNSPECIFIED: NoiseMechanism
NOISE_MECHANISM_LAPLACE: NoiseMechanism
NOISE_MECHANISM_GAUSSIAN: NoiseMechanism

class PseudonymizeRequest(_message.Message):
    __slots__ = ("user_refs",)
    USER_REFS_FIELD_NUMBER: _ClassVar[int]
    user_refs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_refs: _Optional[_Iterable[str]] = ...) -> None: ...

class PseudonymizeResponse(_message.Message):
    __slots__ = ("pseudonyms", "key_version")
    PSEUDONYMS_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    pseudonyms: _containers.RepeatedScalarFieldContainer[str]
    key_version: str
    def __init__(self, pseudonyms: _Optional[_Iterable[str]] = ..., key_version: _Optional[str] = ...) -> None: ...

class SanitizeContextRequest(_message.Message):
    __slots__ = ("context",)
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    context: _containers.ScalarMap[str, str]
    def __init__(self, context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SanitizeContextResponse(_message.Message):
    __slots__ = ("context", "dropped_fields", "generalized_fields")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    GENERALIZED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    context: _containers.ScalarMap[str, str]
    dropped_fields: _containers.RepeatedScalarFieldContainer[str]
    generalized_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, context: _Optional[_Mapping[str, str]] = ..., dropped_fields: _Optional[_Iterable[str]] = ..., generalized_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ReleaseAggregatesRequest(_message.Message):
    __slots__ = ("kind", "epsilon", "delta", "mechanism", "max_contributions_per_user", "purpose", "event_window")
    KIND_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTRIBUTIONS_PER_USER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    EVENT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    kind: _feature_store_pb2.AggregateKind
    epsilon: float
    delta: float
    mechanism: NoiseMechanism
    max_contributions_per_user: int
    purpose: str
    event_window: _feature_store_pb2.EventWindow
    def __init__(self, kind: _Optional[_Union[_feature_store_pb2.AggregateKind, str]] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., mechanism: _Optional[_Union[NoiseMechanism, str]] = ..., max_contributions_per_user: _Optional[int] = ..., purpose: _Optional[str] = ..., event_window: _Optional[_Union[_feature_store_pb2.EventWindow, _Mapping]] = ...) -> None: ...

class ReleaseAggregatesResponse(_message.Message):
    __slots__ = ("release_id", "counts", "epsilon_remaining", "delta_remaining")
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    EPSILON_REMAINING_FIELD_NUMBER: _ClassVar[int]
    DELTA_REMAINING_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    counts: _containers.RepeatedCompositeFieldContainer[_feature_store_pb2.KeyCount]
    epsilon_remaining: float
    delta_remaining: float
    def __init__(self, release_id: _Optional[str] = ..., counts: _Optional[_Iterable[_Union[_feature_store_pb2.KeyCount, _Mapping]]] = ..., epsilon_remaining: _Optional[float] = ..., delta_remaining: _Optional[float] = ...) -> None: ...

class GetPrivacyBudgetRequest(_message.Message):
    __slots__ = ("event_window",)
    EVENT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    event_window: _feature_store_pb2.EventWindow
    def __init__(self, event_window: _Optional[_Union[_feature_store_pb2.EventWindow, _Mapping]] = ...) -> None: ...

class BudgetEntry(_message.Message):
    __slots__ = ("release_id", "kind", "epsilon", "delta", "purpose", "released_at", "event_window")
    RELEASE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EPSILON_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    RELEASED_AT_FIELD_NUMBER: _ClassVar[int]
    EVENT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    release_id: str
    kind: _feature_store_pb2.AggregateKind
    epsilon: float
    delta: float
    purpose: str
    released_at: str
    event_window: _feature_store_pb2.EventWindow
    def __init__(self, release_id: _Optional[str] = ..., kind: _Optional[_Union[_feature_store_pb2.AggregateKind, str]] = ..., epsilon: _Optional[float] = ..., delta: _Optional[float] = ..., purpose: _Optional[str] = ..., released_at: _Optional[str] = ..., event_window: _Optional[_Union[_feature_store_pb2.EventWindow, _Mapping]] = ...) -> None: ...

class GetPrivacyBudgetResponse(_message.Message):
    __slots__ = ("epsilon_total", "epsilon_spent", "delta_total", "delta_spent", "entries")
    EPSILON_TOTAL_FIELD_NUMBER: _ClassVar[int]
    EPSILON_SPENT_FIELD_NUMBER: _ClassVar[int]
    DELTA_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DELTA_SPENT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    epsilon_total: float
    epsilon_spent: float
    delta_total: float
    delta_spent: float
    entries: _containers.RepeatedCompositeFieldContainer[BudgetEntry]
    def __init__(self, epsilon_total: _Optional[float] = ..., epsilon_spent: _Optional[float] = ..., delta_total: _Optional[float] = ..., delta_spent: _Optional[float] = ..., entries: _Optional[_Iterable[_Union[BudgetEntry, _Mapping]]] = ...) -> None: ...
