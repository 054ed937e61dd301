"""What the pipeline needs from its dependencies, and how a failed call is reported.

The pipeline is written against the ``Backends`` protocol so the domain code stays free of
grpc; ``services.orchestrator.clients.Downstreams`` is the gRPC implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from shared.errors import ServiceError
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    privacy_gateway_pb2,
    ranker_pb2,
    reranker_pb2,
    retrieval_pb2,
)


class DownstreamError(ServiceError):
    """A call to ``service`` failed; ``reason`` is the status code name in lower case."""

    def __init__(self, service: str, code: Any, message: str) -> None:
        super().__init__(message)
        self.service = service
        # An instance attribute shadows ServiceError.code, so an error that reaches the
        # server's interceptor keeps the downstream status (UNAVAILABLE stays UNAVAILABLE).
        self.code = code
        self.reason = str(code.name).lower()

    @property
    def invalid_argument(self) -> bool:
        return self.reason == "invalid_argument"


class Backends(Protocol):
    """The calls the orchestrator makes, each with its timeout in seconds."""

    async def pseudonymize(
        self, user_refs: Sequence[str], timeout_s: float
    ) -> privacy_gateway_pb2.PseudonymizeResponse: ...

    async def sanitize_context(
        self, context: Mapping[str, str], timeout_s: float
    ) -> privacy_gateway_pb2.SanitizeContextResponse: ...

    async def user_features(
        self, user_id: str, max_recent_items: int, timeout_s: float
    ) -> feature_store_pb2.GetUserFeaturesResponse: ...

    async def item_features(
        self, item_ids: Sequence[str], timeout_s: float
    ) -> feature_store_pb2.GetItemFeaturesResponse: ...

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> feature_store_pb2.GetPopularItemsResponse: ...

    async def ingest_events(
        self, events: Sequence[common_pb2.Event], timeout_s: float
    ) -> feature_store_pb2.IngestEventsResponse: ...

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> retrieval_pb2.RetrieveCandidatesResponse: ...

    async def score(
        self, request: ranker_pb2.ScoreCandidatesRequest, timeout_s: float
    ) -> ranker_pb2.ScoreCandidatesResponse: ...

    async def rerank(
        self, request: reranker_pb2.RerankRequest, timeout_s: float
    ) -> reranker_pb2.RerankResponse: ...
