"""Fixtures of the service tests that more than one module uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.feature_store.app import FeatureStoreApp, build_feature_store
from services.feature_store.config import FeatureStoreSettings
from tests.service.test_tls import Authority, Pair


@pytest.fixture(scope="module")
def fs_certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair | Path]:
    """A CA file, server certificates for 127.0.0.1 of the feature store ("server") and the
    privacy gateway ("gateway-server"), and client certificates named for the privacy gateway,
    the orchestrator and the DP release job, keyed by those names."""
    ca = Authority(tmp_path_factory.mktemp("fs-pki"), "recsys")
    client = ExtendedKeyUsageOID.CLIENT_AUTH
    return {
        "ca": ca.ca_file,
        "server": ca.issue("feature-store", ips=("127.0.0.1",)),
        "privacy-gateway": ca.issue("privacy-gateway", usage=client),
        "orchestrator": ca.issue("orchestrator", usage=client),
        "gateway-server": ca.issue("privacy-gateway-server", ips=("127.0.0.1",)),
        "dp-release": ca.issue("dp-release", dns=("dp-release",), usage=client),
    }


@pytest.fixture
async def mtls_feature_store(
    tmp_path: Path, fs_certs: dict[str, Pair | Path]
) -> AsyncIterator[FeatureStoreApp]:
    """A feature store on SQLite that requires client certificates of ``fs_certs``' CA and
    reserves raw aggregates and DP releases for the privacy gateway's certificate."""
    server = fs_certs["server"]
    assert isinstance(server, Pair)
    settings = FeatureStoreSettings(
        port=0,
        database_url=f"sqlite:///{tmp_path / 'fs.sqlite'}",
        readiness_interval_s=0.1,
        grace_period_s=0.2,
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        tls_client_ca_file=str(fs_certs["ca"]),
        privileged_callers=["privacy-gateway"],
    )  # type: ignore[call-arg]
    async with build_feature_store(settings) as app:
        yield app
