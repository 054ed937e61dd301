"""The gateway reaches a feature store that reserves raw aggregates for the privacy gateway's
client certificate (mTLS, ``privileged_callers``): real servers, real certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from services.feature_store.app import FeatureStoreApp
from services.privacy_gateway.app import build_privacy_gateway
from services.privacy_gateway.clients import feature_store_tls
from services.privacy_gateway.config import PrivacyGatewaySettings
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    privacy_gateway_pb2,
    privacy_gateway_pb2_grpc,
)
from shared.keyring import KeyRing
from tests.service.test_feature_store import SERVING, _wait_status, serving_stub
from tests.service.test_tls import Pair

RELEASE = privacy_gateway_pb2.ReleaseAggregatesRequest(
    kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY, epsilon=1.0, purpose="mtls test"
)


def _settings(
    port: int, certs: dict[str, Pair | Path], who: str, **more: Any
) -> PrivacyGatewaySettings:
    pair = certs[who]
    assert isinstance(pair, Pair)
    return PrivacyGatewaySettings(
        port=0,
        feature_store_address=f"127.0.0.1:{port}",
        feature_store_tls_ca_file=str(certs["ca"]),
        feature_store_tls_cert_file=str(pair.cert),
        feature_store_tls_key_file=str(pair.key),
        feature_store_timeout_s=5.0,
        **more,
    )


async def _release_as(
    who: str, fs: FeatureStoreApp, certs: dict[str, Pair | Path], tmp_path: Path
) -> tuple[privacy_gateway_pb2.ReleaseAggregatesResponse | grpc.aio.AioRpcError, float]:
    """One release through a gateway whose feature-store client presents ``who``'s certificate;
    returns the response (or the error) and the epsilon spent afterwards."""
    settings = _settings(
        fs.server.port,
        certs,
        who,
        key_ring_json=SecretStr(KeyRing.generate().to_json()),
        database_url=f"sqlite:///{tmp_path / f'{who}.sqlite'}",
        epsilon_budget=5.0,
        delta_budget=0.0,
        grace_period_s=0.2,
        # The test dials the gateway itself in plaintext on loopback.
        dev_allow_loopback_privileged=True,
    )
    result: privacy_gateway_pb2.ReleaseAggregatesResponse | grpc.aio.AioRpcError
    async with (
        build_privacy_gateway(settings) as gateway,
        create_channel(f"127.0.0.1:{gateway.port}", max_attempts=1) as channel,
    ):
        await _wait_status(channel, SERVING)
        stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel)
        try:
            result = await stub.ReleaseAggregates(RELEASE, timeout=10)
        except grpc.aio.AioRpcError as exc:
            result = exc
        spent = gateway.ledger.state().epsilon_spent
    return result, spent


async def test_release_over_mtls_with_the_gateway_certificate(
    mtls_feature_store: FeatureStoreApp, fs_certs: dict[str, Pair | Path], tmp_path: Path
) -> None:
    settings = _settings(mtls_feature_store.port, fs_certs, "privacy-gateway")
    async with serving_stub(mtls_feature_store.port, feature_store_tls(settings)) as stub:
        await stub.LoadCatalog(
            feature_store_pb2.LoadCatalogRequest(
                items=[
                    common_pb2.ItemFeatures(item_id=i, title=f"item {i}", category_path=["x"])
                    for i in ("A", "B", "C")
                ]
            )
        )
    response, spent = await _release_as("privacy-gateway", mtls_feature_store, fs_certs, tmp_path)
    assert isinstance(response, privacy_gateway_pb2.ReleaseAggregatesResponse)
    assert sorted(c.key for c in response.counts) == ["A", "B", "C"]
    assert spent == pytest.approx(1.0)


async def test_another_certificate_is_refused_and_nothing_is_charged(
    mtls_feature_store: FeatureStoreApp, fs_certs: dict[str, Pair | Path], tmp_path: Path
) -> None:
    settings = _settings(mtls_feature_store.port, fs_certs, "orchestrator")
    # Serving, and reachable with this certificate: only the privileged methods refuse it.
    async with serving_stub(mtls_feature_store.port, feature_store_tls(settings)):
        pass
    error, spent = await _release_as("orchestrator", mtls_feature_store, fs_certs, tmp_path)
    assert isinstance(error, grpc.aio.AioRpcError)
    # The feature store's PERMISSION_DENIED is a misconfiguration here, not the caller's fault.
    assert error.code() == grpc.StatusCode.INTERNAL
    assert spent == 0.0


def test_tls_settings_are_validated(fs_certs: dict[str, Pair | Path]) -> None:
    assert feature_store_tls(PrivacyGatewaySettings()) is None
    pair = fs_certs["privacy-gateway"]
    assert isinstance(pair, Pair)
    half = PrivacyGatewaySettings(
        feature_store_tls_ca_file=str(fs_certs["ca"]), feature_store_tls_cert_file=str(pair.cert)
    )
    with pytest.raises(ValueError, match="go together"):
        feature_store_tls(half)
    server_only = feature_store_tls(
        PrivacyGatewaySettings(
            feature_store_tls_ca_file=str(fs_certs["ca"]), feature_store_tls_server_name="fs"
        )
    )
    assert server_only is not None
    assert server_only.cert_file is None
    assert server_only.server_name_override == "fs"
