"""What the pipeline needs from its dependencies, and how a failed call is reported.

The pipeline is written against the ``Backends`` protocol, typed on the domain values of
``services.orchestrator.domain``, so it stays free of grpc and protobuf:
``services.orchestrator.clients.Downstreams`` is the gRPC implementation, and tests drive the
pipeline with an in-memory one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from services.orchestrator.domain import (
    IngestResult,
    ItemFeatures,
    ItemLookup,
    PopularItems,
    Pseudonyms,
    Reason,
    RerankRequest,
    RerankResult,
    RetrievalResult,
    Scores,
    ShopperContext,
    StoredEvent,
    UserFeatures,
)
from shared.errors import ServiceError


class DownstreamError(ServiceError):
    """A call to ``service`` failed with status ``code`` (a ``grpc.StatusCode``)."""

    def __init__(self, service: str, code: Any, message: str) -> None:
        super().__init__(message)
        self.service = service
        # An instance attribute shadows ServiceError.code, so an error that reaches the
        # server's interceptor keeps the downstream status (UNAVAILABLE stays UNAVAILABLE).
        self.code = code
        self.reason = Reason.from_status(str(code.name))

    @property
    def invalid_argument(self) -> bool:
        return self.reason is Reason.INVALID_ARGUMENT


class Backends(Protocol):
    """The calls the orchestrator makes, each with its timeout in seconds; a failed call
    raises DownstreamError."""

    async def pseudonymize(self, user_refs: Sequence[str], timeout_s: float) -> Pseudonyms: ...

    async def user_features(
        self, user_id: str, max_recent_items: int, timeout_s: float
    ) -> UserFeatures: ...

    async def item_features(self, item_ids: Sequence[str], timeout_s: float) -> ItemLookup: ...

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> PopularItems: ...

    async def ingest_events(
        self, events: Sequence[StoredEvent], timeout_s: float
    ) -> IngestResult: ...

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult: ...

    async def similar_items(
        self, item_id: str, n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult: ...

    async def score(
        self, context: ShopperContext, items: Sequence[ItemFeatures], timeout_s: float
    ) -> Scores: ...

    async def rerank(self, request: RerankRequest, timeout_s: float) -> RerankResult: ...
