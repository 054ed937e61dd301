"""Only the privacy gateway's certificate may read raw aggregates or write DP releases."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from services.feature_store.app import FeatureStoreApp
from services.feature_store.config import FeatureStoreSettings
from shared.channels import TlsClientConfig
from shared.gen.acme.recsys.v1 import common_pb2, feature_store_pb2
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
