"""The orchestrator sends every candidate's whole category path to the reranker: through the
pipeline (the in-memory backend of test_orchestrator_degradation) and through the conversion
to RerankRequest, which keeps the top-level label for a reranker that predates the paths."""

from __future__ import annotations

from services.orchestrator.clients import rerank_request_to_proto
from services.orchestrator.domain import RerankCandidate, RerankMethod, RerankRequest
from shared.gen.acme.recsys.v1 import common_pb2
from tests.unit.test_orchestrator_degradation import (
    CATALOG,
    Dependencies,
    FakeClock,
    Harness,
    _settings,
)


async def _harness() -> tuple[Harness, Dependencies]:
    deps = Dependencies(FakeClock())
    harness = Harness(deps, _settings())
    await harness.fill_cache()
    return harness, deps


async def test_the_reranker_gets_each_candidates_whole_category_path() -> None:
    harness, deps = await _harness()
    await harness.recommend(max_per_category=1)
    (request,) = deps.rerank_requests
    assert len(request.candidates) == 8
    for cand in request.candidates:
        path = CATALOG[cand.item_id].category_path
        assert len(path) == 2
        assert cand.category_path == path
        assert cand.category == path[0]
    assert request.max_per_category == 1
    assert request.category_cap_level == 0  # the reranker's own default level


async def test_cold_start_candidates_carry_their_paths_too() -> None:
    harness, deps = await _harness()
    await harness.recommend(user_ref="never-seen")
    (request,) = deps.rerank_requests
    assert [c.category_path for c in request.candidates] == [
        CATALOG[c.item_id].category_path for c in request.candidates
    ]


async def test_without_item_features_no_category_is_invented() -> None:
    harness, deps = await _harness()
    deps.max_item_batch = 5  # the candidates' feature lookup is refused
    await harness.recommend(method=RerankMethod.NONE, tradeoff=0.0)
    (request,) = deps.rerank_requests
    assert all(c.category_path == () and c.category == "" for c in request.candidates)


def test_the_request_carries_the_path_and_the_top_level_label() -> None:
    request = RerankRequest(
        candidates=(
            RerankCandidate("a", 0.9, (1.0, 0.0), ("toys", "crafts", "crayons")),
            RerankCandidate("b", 0.5),
        ),
        k=2,
        method=RerankMethod.MMR,
        tradeoff=0.7,
        max_per_category=1,
        category_cap_level=3,
    )
    proto = rerank_request_to_proto(request)
    a, b = proto.candidates
    assert list(a.category_path) == ["toys", "crafts", "crayons"]
    assert a.category == "toys"  # what a reranker without category_path reads
    assert list(b.category_path) == []
    assert b.category == ""
    assert proto.category_cap_level == 3
    assert proto.max_per_category == 1
    assert proto.method == common_pb2.RERANK_METHOD_MMR
