"""Outbound calls to the five internal services.

Each method takes the timeout the pipeline derived from the request's Budget and turns a
failed RPC into a DownstreamError that names the service and a short reason, so the domain
code decides on fallbacks without importing grpc.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TypeVar

import grpc

from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.downstream import DownstreamError
from shared.channels import TlsClientConfig, create_channel
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    feature_store_pb2_grpc,
    privacy_gateway_pb2,
    privacy_gateway_pb2_grpc,
    ranker_pb2,
    ranker_pb2_grpc,
    reranker_pb2,
    reranker_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
)

T = TypeVar("T")


async def _call(service: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        # Only INVALID_ARGUMENT carries the downstream text onward: it names a request field
        # and holds no internals; every other failure is described by its code alone.
        message = (
            exc.details() or "invalid argument"
            if code == grpc.StatusCode.INVALID_ARGUMENT
            else f"{service} failed: {code.name}"
        )
        raise DownstreamError(service, code, message) from None


def downstream_tls(settings: OrchestratorSettings) -> TlsClientConfig | None:
    """TLS for every outbound channel when a CA is configured; a client certificate without
    its key (or the reverse) is a configuration error, never a silent plaintext fallback."""
    if bool(settings.downstream_tls_cert_file) != bool(settings.downstream_tls_key_file):
        raise ValueError("downstream_tls_cert_file and downstream_tls_key_file go together")
    if not settings.downstream_tls_ca_file:
        if settings.downstream_tls_cert_file:
            raise ValueError("downstream_tls_cert_file needs downstream_tls_ca_file")
        return None
    return TlsClientConfig(
        ca_file=settings.downstream_tls_ca_file,
        cert_file=settings.downstream_tls_cert_file,
        key_file=settings.downstream_tls_key_file,
    )


class Downstreams:
    """Channels and stubs of every dependency; one instance per orchestrator process."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        tls = downstream_tls(settings)
        addresses = {
            "privacy_gateway": settings.privacy_gateway_addr,
            "feature_store": settings.feature_store_addr,
            "retrieval": settings.retrieval_addr,
            "ranker": settings.ranker_addr,
            "reranker": settings.reranker_addr,
        }
        self._channels = {
            name: create_channel(addr, max_attempts=settings.downstream_max_attempts, tls=tls)
            for name, addr in addresses.items()
        }
        self._gateway = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(
            self._channels["privacy_gateway"]
        )
        self._store = feature_store_pb2_grpc.FeatureStoreServiceStub(
            self._channels["feature_store"]
        )
        self._retrieval = retrieval_pb2_grpc.RetrievalServiceStub(self._channels["retrieval"])
        self._ranker = ranker_pb2_grpc.RankerServiceStub(self._channels["ranker"])
        self._reranker = reranker_pb2_grpc.RerankerServiceStub(self._channels["reranker"])

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def pseudonymize(
        self, user_refs: Sequence[str], timeout_s: float
    ) -> privacy_gateway_pb2.PseudonymizeResponse:
        return await _call(
            "privacy_gateway",
            self._gateway.Pseudonymize(
                privacy_gateway_pb2.PseudonymizeRequest(user_refs=list(user_refs)),
                timeout=timeout_s,
            ),
        )

    async def sanitize_context(
        self, context: Mapping[str, str], timeout_s: float
    ) -> privacy_gateway_pb2.SanitizeContextResponse:
        return await _call(
            "privacy_gateway",
            self._gateway.SanitizeContext(
                privacy_gateway_pb2.SanitizeContextRequest(context=dict(context)), timeout=timeout_s
            ),
        )

    async def user_features(
        self, user_id: str, max_recent_items: int, timeout_s: float
    ) -> feature_store_pb2.GetUserFeaturesResponse:
        return await _call(
            "feature_store",
            self._store.GetUserFeatures(
                feature_store_pb2.GetUserFeaturesRequest(
                    user_id=user_id, max_recent_items=max_recent_items
                ),
                timeout=timeout_s,
            ),
        )

    async def item_features(
        self, item_ids: Sequence[str], timeout_s: float
    ) -> feature_store_pb2.GetItemFeaturesResponse:
        return await _call(
            "feature_store",
            self._store.GetItemFeatures(
                feature_store_pb2.GetItemFeaturesRequest(item_ids=list(item_ids)), timeout=timeout_s
            ),
        )

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> feature_store_pb2.GetPopularItemsResponse:
        return await _call(
            "feature_store",
            self._store.GetPopularItems(
                feature_store_pb2.GetPopularItemsRequest(
                    limit=limit, excluded_item_ids=list(excluded_item_ids)
                ),
                timeout=timeout_s,
            ),
        )

    async def ingest_events(
        self, events: Sequence[common_pb2.Event], timeout_s: float
    ) -> feature_store_pb2.IngestEventsResponse:
        return await _call(
            "feature_store",
            self._store.IngestEvents(
                feature_store_pb2.IngestEventsRequest(events=list(events)), timeout=timeout_s
            ),
        )

    async def retrieve(
        self,
        history: Sequence[str],
        n: int,
        excluded_item_ids: Sequence[str],
        timeout_s: float,
    ) -> retrieval_pb2.RetrieveCandidatesResponse:
        return await _call(
            "retrieval",
            self._retrieval.RetrieveCandidates(
                retrieval_pb2.RetrieveCandidatesRequest(
                    history=retrieval_pb2.UserHistory(item_ids=list(history)),
                    n=n,
                    excluded_item_ids=list(excluded_item_ids),
                    include_embeddings=True,
                ),
                timeout=timeout_s,
            ),
        )

    async def score(
        self, request: ranker_pb2.ScoreCandidatesRequest, timeout_s: float
    ) -> ranker_pb2.ScoreCandidatesResponse:
        return await _call("ranker", self._ranker.ScoreCandidates(request, timeout=timeout_s))

    async def rerank(
        self, request: reranker_pb2.RerankRequest, timeout_s: float
    ) -> reranker_pb2.RerankResponse:
        return await _call("reranker", self._reranker.Rerank(request, timeout=timeout_s))
