"""Only the privacy gateway's certificate may read raw aggregates or write DP releases."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from services.feature_store.app import FeatureStoreApp, build_feature_store
from services.feature_store.config import FeatureStoreSettings
from shared.channels import TlsClientConfig
from shared.gen.acme.recsys.v1 import common_pb2, feature_store_pb2, feature_store_pb2_grpc
from shared.peer_auth import is_loopback_peer
from tests.service.test_feature_store import serving_stub
from tests.service.test_tls import Pair


def _tls(certs: dict[str, Pair | Path], who: str) -> TlsClientConfig:
    pair = certs[who]
    assert isinstance(pair, Pair)
    return TlsClientConfig(
        ca_file=str(certs["ca"]), cert_file=str(pair.cert), key_file=str(pair.key)
    )


COUNTS = feature_store_pb2.GetContributionBoundedCountsRequest(
    kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY, max_contributions_per_user=2
)
RELEASE = feature_store_pb2.SetItemPopularityRequest(
    release_id="r1", popularities=[feature_store_pb2.KeyCount(key="A", count=1.0)]
)


async def test_gateway_certificate_may_read_aggregates(
    mtls_feature_store: FeatureStoreApp, fs_certs: dict[str, Pair | Path]
) -> None:
    port = mtls_feature_store.port
    async with serving_stub(port, _tls(fs_certs, "privacy-gateway")) as stub:
        await stub.LoadCatalog(
            feature_store_pb2.LoadCatalogRequest(
                items=[common_pb2.ItemFeatures(item_id="A", title="a", category_path=["x"])]
            )
        )
        counts = await stub.GetContributionBoundedCounts(COUNTS, timeout=5)
        assert [(c.key, c.count) for c in counts.counts] == [("A", 0.0)]
        assert (await stub.SetItemPopularity(RELEASE, timeout=5)).updated_count == 1


async def test_other_services_are_denied_aggregates_but_not_features(
    mtls_feature_store: FeatureStoreApp, fs_certs: dict[str, Pair | Path]
) -> None:
    async with serving_stub(mtls_feature_store.port, _tls(fs_certs, "orchestrator")) as stub:
        for call in (
            stub.GetContributionBoundedCounts(COUNTS, timeout=5),
            stub.SetItemPopularity(RELEASE, timeout=5),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert err.value.details() == "this method is reserved for the privacy gateway"
        found = await stub.GetItemFeatures(
            feature_store_pb2.GetItemFeaturesRequest(item_ids=["A"]), timeout=5
        )
        assert list(found.missing_item_ids) == ["A"]


def test_privileged_callers_require_mtls() -> None:
    with pytest.raises(ValidationError, match="privileged_callers needs mTLS"):
        FeatureStoreSettings(privileged_callers=["privacy-gateway"])  # type: ignore[call-arg]


async def _privileged_codes(
    stub: feature_store_pb2_grpc.FeatureStoreServiceStub,
) -> list[grpc.StatusCode]:
    codes = []
    for call in (
        stub.GetContributionBoundedCounts(COUNTS, timeout=5),
        stub.SetItemPopularity(RELEASE, timeout=5),
    ):
        try:
            await call
            codes.append(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            codes.append(err.code())
    return codes


def _plain(tmp_path: Path, **overrides: object) -> FeatureStoreSettings:
    values: dict[str, object] = {
        "port": 0,
        "database_url": f"sqlite:///{tmp_path / 'fs.sqlite'}",
        "readiness_interval_s": 0.1,
        "grace_period_s": 0.2,
    }
    values.update(overrides)
    return FeatureStoreSettings(**values)  # type: ignore[arg-type]


async def test_an_empty_privileged_list_denies_every_caller(tmp_path: Path) -> None:
    async with (
        build_feature_store(_plain(tmp_path)) as app,
        serving_stub(app.port) as stub,
    ):
        assert await _privileged_codes(stub) == [grpc.StatusCode.PERMISSION_DENIED] * 2
        # The ordinary reads stay open.
        await stub.GetPopularItems(feature_store_pb2.GetPopularItemsRequest(limit=1), timeout=5)


async def test_empty_list_with_mtls_denies_even_the_gateway_certificate(
    tmp_path: Path, fs_certs: dict[str, Pair | Path]
) -> None:
    server = fs_certs["server"]
    assert isinstance(server, Pair)
    settings = _plain(
        tmp_path,
        tls_cert_file=str(server.cert),
        tls_key_file=str(server.key),
        tls_client_ca_file=str(fs_certs["ca"]),
    )
    async with (
        build_feature_store(settings) as app,
        serving_stub(app.port, _tls(fs_certs, "privacy-gateway")) as stub,
    ):
        assert await _privileged_codes(stub) == [grpc.StatusCode.PERMISSION_DENIED] * 2


async def test_the_development_flag_opens_loopback_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        build_feature_store(_plain(tmp_path, dev_allow_loopback_privileged=True)) as app,
        serving_stub(app.port) as stub,
    ):
        assert await _privileged_codes(stub) == [grpc.StatusCode.OK] * 2
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("DEVELOPMENT MODE" in m for m in messages)
    assert sum("granted to a loopback caller" in m for m in messages) == 2


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.3.2.1:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv4:10.0.0.7:5000", False),
        ("ipv6:[fd00::1]:5000", False),
        ("ipv6:[::ffff:10.0.0.7]:5000", False),
        ("unix:/tmp/socket", False),
        ("", False),
        ("ipv4:localhost:5000", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(peer: str, loopback: bool) -> None:
    assert is_loopback_peer(peer) is loopback
