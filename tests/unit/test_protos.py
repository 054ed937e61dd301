import subprocess
import sys

from tests.conftest import REPO


def test_generated_code_matches_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_is_generated() -> None:
    from shared.gen.acme.recsys.v1 import (
        feature_store_pb2,
        orchestrator_pb2,
        privacy_gateway_pb2,
        ranker_pb2,
        reranker_pb2,
        retrieval_pb2,
    )

    names = {
        svc.full_name
        for mod in (
            feature_store_pb2,
            orchestrator_pb2,
            privacy_gateway_pb2,
            ranker_pb2,
            reranker_pb2,
            retrieval_pb2,
        )
        for svc in mod.DESCRIPTOR.services_by_name.values()
    }
    assert names == {
        "acme.recsys.v1.FeatureStoreService",
        "acme.recsys.v1.RecommendationService",
        "acme.recsys.v1.PrivacyGatewayService",
        "acme.recsys.v1.RankerService",
        "acme.recsys.v1.RerankerService",
        "acme.recsys.v1.RetrievalService",
    }
