"""The live catalog against REAL services started as processes (privacy gateway, feature store,
retrieval, reranker; the orchestrator in-process on the same composition root): a brand-new
item upserted through the ops job (real MiniLM title embedding, no retraining) is returned by
Recommend and SimilarItems at once, and a withdrawn item leaves every answer at once, on the
full path, the DP-popularity cold start, the retrieval-down fallback and SimilarItems.

The ranker is switched off by configuration (not degraded): what is tested is which items may
appear, and the cross-encoder would only add minutes on a 2-core CPU.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from client import cli
from devstack.stack import Layout, Stack, local_specs, release_popularity
from ops.catalog import Embed, Targets, minilm_embedder, restore_items, upsert_items, withdraw_items
from services.orchestrator.app import Orchestrator, build_orchestrator
from services.orchestrator.config import OrchestratorSettings
from shared.channels import create_channel
from shared.data.types import CatalogItem
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    feature_store_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from tests.integration.conftest import build_small_artefacts, dead_addr, small_layout
from tests.service.test_orchestrator_pipeline import REPO

USER = "user-00003"
NONE = orchestrator_pb2.DiversitySettings(method=common_pb2.RERANK_METHOD_NONE)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    layout = small_layout(tmp_path_factory.mktemp("live"), ranker_backend="local")
    build_small_artefacts(layout)
    specs = [s for s in local_specs(layout) if s.name not in {"orchestrator", "ranker"}]
    running = Stack(specs, layout.logs_dir, REPO, progress=lambda _: None)
    running.start()
    try:
        asyncio.run(running.wait_ready())
        asyncio.run(release_popularity(layout, progress=lambda _: None))
        yield layout
    finally:
        running.stop_all(grace_s=5)


@pytest.fixture(scope="module")
def embed() -> Embed:
    """The job's real title encoder (the frozen, checksum-verified MiniLM)."""
    return minilm_embedder()


def _targets(layout: Layout) -> Targets:
    return Targets(layout.addr("feature_store"), (layout.addr("retrieval"),), timeout_s=60)


async def _start(layout: Layout, **overrides: object) -> Orchestrator:
    values: dict[str, object] = {
        "port": 0,
        "privacy_gateway_addr": layout.addr("privacy_gateway"),
        "feature_store_addr": layout.addr("feature_store"),
        "retrieval_addr": layout.addr("retrieval"),
        "ranker_addr": dead_addr(),
        "reranker_addr": layout.addr("reranker"),
        "ranker_enabled": False,
        "candidate_count": 20,
        "default_deadline_s": 20.0,
        "downstream_max_attempts": 1,
        "popularity_refresh_s": 0.5,
        "grace_period_s": 0.2,
    }
    values.update(overrides)
    app = build_orchestrator(OrchestratorSettings(**values))  # type: ignore[arg-type]
    await app.start()
    for _ in range(100):
        if app.popularity.release_id:
            return app
        await asyncio.sleep(0.1)
    raise AssertionError("the popularity cache never filled")


@pytest.fixture
async def orchestrator(stack: Layout) -> AsyncIterator[Orchestrator]:
    app = await _start(stack)
    yield app
    await app.stop()


async def _recommend(
    app: Orchestrator, user: str, k: int = 10, **kw: object
) -> orchestrator_pb2.RecommendResponse:
    request = orchestrator_pb2.RecommendRequest(user_ref=user, k=k, diversity=NONE, **kw)  # type: ignore[arg-type]
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.Recommend(request, timeout=25)


async def _similar(
    app: Orchestrator, item: str, k: int = 10, **kw: object
) -> orchestrator_pb2.SimilarItemsResponse:
    request = orchestrator_pb2.SimilarItemsRequest(item_id=item, k=k, **kw)  # type: ignore[arg-type]
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.SimilarItems(request, timeout=25)


def _ids(
    response: orchestrator_pb2.RecommendResponse | orchestrator_pb2.SimilarItemsResponse,
) -> list[str]:
    return [i.item_id for i in response.items]


async def test_a_new_item_is_recommended_and_found_similar_without_retraining(
    stack: Layout, orchestrator: Orchestrator, embed: Embed
) -> None:
    before = await _recommend(orchestrator, USER)
    twin = before.items[0]
    title = f"{twin.title} deluxe"
    new = CatalogItem("LIVE-0001", title, tuple(twin.category_path), 12.5)
    report = await upsert_items([new], _targets(stack), embed)
    assert (report.store_inserted, report.retrieval_added) == (1, 1)

    # A shopper who viewed it: their history holds an item no trained version knows.
    async with create_channel(f"127.0.0.1:{orchestrator.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        ack = await stub.LogEvents(
            orchestrator_pb2.LogEventsRequest(
                events=[
                    orchestrator_pb2.ShopperEvent(
                        event_id="live-view-1",
                        user_ref="live-shopper",
                        item_id=new.item_id,
                        type=common_pb2.EVENT_TYPE_VIEW,
                    )
                ]
            ),
            timeout=10,
        )
    assert ack.accepted_count == 1
    answer = await _recommend(orchestrator, "live-shopper")
    assert not answer.degraded_stages
    assert new.item_id in _ids(answer)
    shown = next(i for i in answer.items if i.item_id == new.item_id)
    assert (shown.title, shown.price) == (title, 12.5)

    # From its twin's product page, and as a seed of its own.
    near_twin = await _similar(orchestrator, twin.item_id, k=20, diversity=NONE)
    assert new.item_id in _ids(near_twin)
    own = await _similar(orchestrator, new.item_id, k=5)
    assert len(own.items) == 5
    assert new.item_id not in _ids(own)
    assert not own.degraded_stages
    stages = [common_pb2.STAGE_RETRIEVAL, common_pb2.STAGE_RERANKER]
    assert all(list(i.stages) == stages for i in own.items)
    assert own.versions["retrieval_index"] == "test-v1"


async def test_a_withdrawn_item_leaves_every_answer_at_once(
    stack: Layout, orchestrator: Orchestrator, embed: Embed
) -> None:
    full = await _recommend(orchestrator, USER)
    target = full.items[0].item_id
    cold = await _recommend(orchestrator, "never-seen-shopper-1")
    popular = cold.items[0].item_id
    assert popular != target
    targets = _targets(stack)
    report = await withdraw_items([target, popular], targets)
    assert (report.store_updated, report.retrieval_removed) == (2, 2)

    gone = {target, popular}
    assert not gone & set(_ids(await _recommend(orchestrator, USER)))
    assert not gone & set(_ids(await _recommend(orchestrator, "never-seen-shopper-1")))
    # Product pages: neighbours never include a withdrawn item; a withdrawn seed still has them.
    assert not gone & set(_ids(await _similar(orchestrator, full.items[1].item_id, k=20)))
    assert not gone & set(_ids(await _similar(orchestrator, target, k=20)))
    # Retrieval down: the popularity cache, refreshed before the withdrawal, is checked live.
    down = await _start(stack, retrieval_addr=dead_addr())
    try:
        fallback = await _recommend(down, USER, k=10)
    finally:
        await down.stop()
    assert {d.stage for d in fallback.degraded_stages} == {common_pb2.STAGE_RETRIEVAL}
    assert len(fallback.items) == 10
    assert not gone & set(_ids(fallback))

    # The store's flag alone is enough: an item withdrawn there but still in the index.
    second = (await _recommend(orchestrator, USER)).items[0].item_id
    async with create_channel(stack.addr("feature_store")) as channel:
        store = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        await store.SetItemAvailability(
            feature_store_pb2.SetItemAvailabilityRequest(item_ids=[second], available=False),
            timeout=10,
        )
    assert second not in _ids(await _recommend(orchestrator, USER))

    # Back in stock: retrievable again and recommended as before.
    restored = await restore_items([target, second], targets, embed)
    assert restored.store_updated == 2
    assert restored.retrieval_restored == 1  # `second` was never removed from the index
    assert target in _ids(await _recommend(orchestrator, USER))
    assert second in _ids(await _recommend(orchestrator, USER))
    await restore_items([popular], targets, embed)


async def test_similar_items_errors_and_the_cli_verb(
    stack: Layout, orchestrator: Orchestrator, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _similar(orchestrator, "NO-SUCH-ITEM")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for bad, field in (({"k": 0}, "k must be"), ({"item_id": ""}, "item_id must")):
        values: dict[str, object] = {"item_id": "SKU000001", "k": 3, **bad}
        request = orchestrator_pb2.SimilarItemsRequest(**values)  # type: ignore[arg-type]
        async with create_channel(f"127.0.0.1:{orchestrator.port}", max_attempts=1) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.SimilarItems(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")
    # Retrieval down: no notion of "near" is left, so the answer is UNAVAILABLE, not a list.
    down = await _start(stack, retrieval_addr=dead_addr())
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _similar(down, "SKU000001")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await down.stop()

    seed = (await _recommend(orchestrator, USER)).items[0].item_id
    excluded = (await _similar(orchestrator, seed, k=1)).items[0].item_id
    capsys.readouterr()
    argv = ["--json", "similar", "--target", f"127.0.0.1:{orchestrator.port}", "--item", seed]
    code = await asyncio.to_thread(cli.main, [*argv, "-k", "4", "--exclude", excluded])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    shown = [i["item_id"] for i in printed["items"]]
    assert len(shown) == 4
    assert seed not in shown
    assert excluded not in shown


async def test_similar_items_hold_the_category_and_price_filters(
    orchestrator: Orchestrator,
) -> None:
    seed = (await _recommend(orchestrator, USER)).items[0]
    unfiltered = await _similar(orchestrator, seed.item_id, k=20, diversity=NONE)
    top = seed.category_path[0]
    # A category some neighbours are not in, so the filter has something to remove.
    other = next(i.category_path[0] for i in unfiltered.items if i.category_path[0] != top)
    inside = await _similar(
        orchestrator,
        seed.item_id,
        k=10,
        filters=common_pb2.Filters(include_categories=[common_pb2.CategoryPrefix(levels=[top])]),
    )
    assert inside.items
    assert {i.category_path[0] for i in inside.items} == {top}
    outside = await _similar(
        orchestrator,
        seed.item_id,
        k=10,
        filters=common_pb2.Filters(exclude_categories=[common_pb2.CategoryPrefix(levels=[other])]),
    )
    assert outside.items
    assert other not in {i.category_path[0] for i in outside.items}
    prices = sorted(i.price for i in unfiltered.items)
    cap = prices[len(prices) // 2]
    cheap = await _similar(
        orchestrator, seed.item_id, k=10, filters=common_pb2.Filters(max_price=cap)
    )
    assert cheap.items
    assert all(i.price <= cap for i in cheap.items)
    # Every similar item says why it is there, the similarity first.
    assert all(
        i.reasons and i.reasons[0].kind == orchestrator_pb2.REASON_KIND_SIMILAR_TO_ITEM
        for i in cheap.items
    )
    assert seed.item_id not in _ids(cheap)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _similar(
            orchestrator, seed.item_id, filters=common_pb2.Filters(min_price=5.0, max_price=1.0)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "min_price" in (err.value.details() or "")
