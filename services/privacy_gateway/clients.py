"""Outbound calls of the privacy gateway: the feature store's bounded counts and popularity."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from services.privacy_gateway.config import PrivacyGatewaySettings
from shared.channels import TlsClientConfig, create_channel
from shared.deadline import Budget
from shared.errors import FailedPrecondition
from shared.event_window import EventWindow, window_to_proto
from shared.gen.acme.recsys.v1 import feature_store_pb2, feature_store_pb2_grpc


def feature_store_tls(settings: PrivacyGatewaySettings) -> TlsClientConfig | None:
    """TLS (mTLS with a client certificate) to the feature store when a CA is configured."""
    if not settings.feature_store_tls_ca_file:
        return None
    if bool(settings.feature_store_tls_cert_file) != bool(settings.feature_store_tls_key_file):
        raise ValueError("feature_store_tls_cert_file and _key_file go together")
    return TlsClientConfig(
        ca_file=settings.feature_store_tls_ca_file,
        cert_file=settings.feature_store_tls_cert_file,
        key_file=settings.feature_store_tls_key_file,
        server_name_override=settings.feature_store_tls_server_name,
    )


class FeatureStoreClient:
    """The two FeatureStoreService RPCs the gateway needs; deadlines come from the caller's
    Budget, capped at ``max_timeout_s``."""

    def __init__(
        self,
        address: str,
        *,
        max_timeout_s: float = 30.0,
        tls: TlsClientConfig | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._channel = channel or create_channel(address, tls=tls)
        self._stub = feature_store_pb2_grpc.FeatureStoreServiceStub(self._channel)
        self._max_timeout_s = max_timeout_s

    async def contribution_bounded_counts(
        self,
        kind: feature_store_pb2.AggregateKind,
        max_contributions: int,
        budget: Budget,
        window: EventWindow | None = None,
    ) -> list[tuple[str, float]]:
        """The bounded counts of the events in ``window`` (None: every event); the store's
        refusal to count (FAILED_PRECONDITION: users under two key versions) is the
        release's refusal, with the store's reason."""
        request = feature_store_pb2.GetContributionBoundedCountsRequest(
            kind=kind, max_contributions_per_user=max_contributions
        )
        if window is not None:
            request.event_window.CopyFrom(window_to_proto(window))
        try:
            response = await self._stub.GetContributionBoundedCounts(
                request,
                timeout=budget.timeout_for(0.5, cap=self._max_timeout_s),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise FailedPrecondition(exc.details() or "the feature store refused") from None
            raise
        return [(c.key, c.count) for c in response.counts]

    async def set_item_popularity(
        self, release_id: str, popularities: Sequence[tuple[str, float]], budget: Budget
    ) -> int:
        response = await self._stub.SetItemPopularity(
            feature_store_pb2.SetItemPopularityRequest(
                release_id=release_id,
                popularities=[feature_store_pb2.KeyCount(key=k, count=c) for k, c in popularities],
            ),
            timeout=budget.timeout_for(1.0, cap=self._max_timeout_s),
        )
        return int(response.updated_count)

    async def close(self) -> None:
        await self._channel.close()
