"""Only the DP release job's client certificate may ask the privacy gateway for a release
(``privileged_callers``): real servers over mTLS, real certificates from one test CA."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from pydantic import SecretStr, ValidationError

from services.feature_store.app import FeatureStoreApp
from services.privacy_gateway.app import PrivacyGatewayApp, build_privacy_gateway
from services.privacy_gateway.config import PrivacyGatewaySettings
from shared.channels import TlsClientConfig, create_channel
from shared.gen.acme.recsys.v1 import (
    feature_store_pb2,
    privacy_gateway_pb2,
    privacy_gateway_pb2_grpc,
)
from shared.keyring import KeyRing
from tests.service.test_feature_store import SERVING, _wait_status
from tests.service.test_tls import Pair

RELEASE = privacy_gateway_pb2.ReleaseAggregatesRequest(
    kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY, epsilon=1.0, purpose="auth test"
)
DENIED = "ReleaseAggregates is reserved for the DP release job"


def _pair(certs: dict[str, Pair | Path], who: str) -> Pair:
    pair = certs[who]
    assert isinstance(pair, Pair)
    return pair


def _client_tls(certs: dict[str, Pair | Path], who: str | None) -> TlsClientConfig:
    """TLS to the gateway, presenting ``who``'s client certificate (None: no certificate)."""
    pair = None if who is None else _pair(certs, who)
    return TlsClientConfig(
        ca_file=str(certs["ca"]),
        cert_file=None if pair is None else str(pair.cert),
        key_file=None if pair is None else str(pair.key),
    )


@asynccontextmanager
async def _gateway(
    fs: FeatureStoreApp, certs: dict[str, Pair | Path], tmp_path: Path, **more: Any
) -> AsyncIterator[PrivacyGatewayApp]:
    """A gateway serving mTLS with ``certs``' CA, reaching the mTLS feature store with its own
    client certificate."""
    server, client = _pair(certs, "gateway-server"), _pair(certs, "privacy-gateway")
    settings = PrivacyGatewaySettings(
        port=0,
        grace_period_s=0.2,
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        tls_client_ca_file=str(certs["ca"]),
        feature_store_address=f"127.0.0.1:{fs.port}",
        feature_store_tls_ca_file=str(certs["ca"]),
        feature_store_tls_cert_file=str(client.cert),
        feature_store_tls_key_file=str(client.key),
        feature_store_timeout_s=5.0,
        key_ring_json=SecretStr(KeyRing.generate().to_json()),
        database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        epsilon_budget=5.0,
        delta_budget=0.0,
        **more,
    )
    async with (
        build_privacy_gateway(settings) as gateway,
        create_channel(f"127.0.0.1:{gateway.port}", tls=_client_tls(certs, "orchestrator")) as ch,
    ):
        # Ready once the ledger tables exist.
        await _wait_status(ch, SERVING)
        yield gateway


async def _release(gateway: PrivacyGatewayApp, tls: TlsClientConfig) -> grpc.StatusCode:
    """The status of one release asked with ``tls``; a refusal must carry the message."""
    async with create_channel(f"127.0.0.1:{gateway.port}", tls=tls, max_attempts=1) as channel:
        stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel)
        try:
            reply = await stub.ReleaseAggregates(RELEASE, timeout=10)
        except grpc.aio.AioRpcError as exc:
            error = exc
        else:
            assert reply.release_id
            return grpc.StatusCode.OK
    if error.code() == grpc.StatusCode.PERMISSION_DENIED:
        assert error.details() == DENIED
    return error.code()


def _denials(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        {k: getattr(r, k, None) for k in ("method", "reason")}
        for r in caplog.records
        if r.getMessage() == "privileged method denied"
    ]


async def test_only_the_release_jobs_certificate_may_release(
    mtls_feature_store: FeatureStoreApp,
    fs_certs: dict[str, Pair | Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _gateway(
        mtls_feature_store, fs_certs, tmp_path, privileged_callers=["dp-release"]
    ) as gateway:
        assert await _release(gateway, _client_tls(fs_certs, "dp-release")) == grpc.StatusCode.OK
        spent = gateway.ledger.state().epsilon_spent
        assert spent == pytest.approx(1.0)
        # A valid certificate of the same CA, another service's: refused, nothing charged.
        for other in ("orchestrator", "privacy-gateway"):
            code = await _release(gateway, _client_tls(fs_certs, other))
            assert code == grpc.StatusCode.PERMISSION_DENIED, other
        # No certificate at all: the mTLS handshake itself refuses the caller.
        assert await _release(gateway, _client_tls(fs_certs, None)) == (grpc.StatusCode.UNAVAILABLE)
        assert gateway.ledger.state().epsilon_spent == pytest.approx(spent)
        # The ordinary methods stay open to the other services.
        async with create_channel(
            f"127.0.0.1:{gateway.port}", tls=_client_tls(fs_certs, "orchestrator")
        ) as channel:
            stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel)
            reply = await stub.Pseudonymize(
                privacy_gateway_pb2.PseudonymizeRequest(user_refs=["shopper-1"]), timeout=10
            )
            assert len(reply.pseudonyms) == 1
    assert (
        _denials(caplog)
        == [{"method": "ReleaseAggregates", "reason": "certificate_not_allowed"}] * 2
    )
    # The denial names neither the caller's certificate nor its address.
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "CN=orchestrator" not in logged
    assert "x509" not in logged


async def test_an_empty_list_denies_even_the_release_job(
    mtls_feature_store: FeatureStoreApp, fs_certs: dict[str, Pair | Path], tmp_path: Path
) -> None:
    async with _gateway(mtls_feature_store, fs_certs, tmp_path) as gateway:
        code = await _release(gateway, _client_tls(fs_certs, "dp-release"))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert gateway.ledger.state().epsilon_spent == 0.0


async def test_a_caller_without_a_certificate_is_denied_without_the_development_flag(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Plaintext on loopback, as the local stack runs: denied unless the flag says otherwise."""
    for flag, want in ((False, grpc.StatusCode.PERMISSION_DENIED), (True, None)):
        settings = PrivacyGatewaySettings(
            port=0,
            grace_period_s=0.2,
            # Nothing listens here: a granted release fails on the feature store instead.
            feature_store_address="127.0.0.1:9",
            feature_store_timeout_s=1.0,
            key_ring_json=SecretStr(KeyRing.generate().to_json()),
            database_url=f"sqlite:///{tmp_path / f'ledger-{flag}.sqlite'}",
            dev_allow_loopback_privileged=flag,
        )
        async with build_privacy_gateway(settings) as gateway:
            async with create_channel(f"127.0.0.1:{gateway.port}", max_attempts=1) as channel:
                await _wait_status(channel, SERVING)
                stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ReleaseAggregates(RELEASE, timeout=10)
            if want is None:
                assert err.value.code() != grpc.StatusCode.PERMISSION_DENIED
            else:
                assert err.value.code() == want
                assert err.value.details() == DENIED
    assert _denials(caplog) == [{"method": "ReleaseAggregates", "reason": "no_client_certificate"}]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("DEVELOPMENT MODE" in m for m in warnings)
    assert sum("granted to a loopback caller" in m for m in warnings) == 1


def test_privileged_callers_require_mtls() -> None:
    with pytest.raises(ValidationError, match="privileged_callers needs mTLS"):
        PrivacyGatewaySettings(privileged_callers=["dp-release"])  # type: ignore[call-arg]
