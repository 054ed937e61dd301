"""Filters and paging through the real services (processes on a small synthetic catalog),
on every degradation path: a stage on a port nothing listens on, or a killed process.

Every answer is checked on the attributes the response itself carries (category path and
price from the feature store), by rules written out here, not by the predicate under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from devstack.stack import Layout, Stack
from services.orchestrator.app import Orchestrator
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.integration.conftest import dead_addr
from tests.service.test_orchestrator_pipeline import (
    Observed,
    _second_process,
    _settings,
    _start,
    _wait_cache,
    stack,
)

__all__ = ["stack"]  # the module-scoped stack fixture, shared with the pipeline tests' setup

K = 5
STAGE = common_pb2.Stage
USER = "user-00003"

Item = orchestrator_pb2.Recommendation


def _prefix(*levels: str) -> common_pb2.CategoryPrefix:
    return common_pb2.CategoryPrefix(levels=list(levels))


# (filters, the rule they mean, written out on the answer's own attributes)
FILTERS: dict[str, tuple[common_pb2.Filters, Callable[[Item], bool]]] = {
    "toys_10_to_30": (
        common_pb2.Filters(include_categories=[_prefix("toys")], min_price=10.0, max_price=30.0),
        lambda i: i.category_path[0] == "toys" and 10.0 <= i.price <= 30.0,
    ),
    "no_grocery_no_kitchen": (
        common_pb2.Filters(exclude_categories=[_prefix("grocery"), _prefix("home", "kitchen")]),
        lambda i: (
            i.category_path[0] != "grocery" and list(i.category_path[:2]) != ["home", "kitchen"]
        ),
    ),
}


async def _ask(app: Orchestrator, **kw: object) -> orchestrator_pb2.RecommendResponse:
    values: dict[str, object] = {"user_ref": USER, "k": K}
    values.update(kw)
    request = orchestrator_pb2.RecommendRequest(**values)  # type: ignore[arg-type]
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.Recommend(request, timeout=25, wait_for_ready=True)


Path = tuple[dict[str, object], dict[int, str]]
PATHS: dict[str, Path] = {
    "full": ({}, {}),
    "ranker_down": ({"ranker_addr": "dead"}, {STAGE.STAGE_RANKER: "unavailable"}),
    "reranker_down": ({"reranker_addr": "dead"}, {STAGE.STAGE_RERANKER: "unavailable"}),
    "retrieval_down": ({"retrieval_addr": "dead"}, {STAGE.STAGE_RETRIEVAL: "unavailable"}),
    "feature_store_killed": ({}, {STAGE.STAGE_FEATURE_STORE: "unavailable"}),
    "cold_start": ({}, {}),
}


@pytest.fixture
async def observed() -> Observed:
    return Observed()


async def _on_path(
    stack: tuple[Layout, Stack],
    observed: Observed,
    path: str,
    ask: Callable[[Orchestrator], Awaitable[object]],
) -> object:
    """Run ``ask`` against an orchestrator whose ``path`` stage is down (or killed)."""
    layout, _ = stack
    overrides = {k: dead_addr() for k in PATHS[path][0]}
    if path != "feature_store_killed":
        app = await _start(_settings(layout, **overrides), observed)
        try:
            await _wait_cache(app)
            return await ask(app)
        finally:
            await app.stop()
    spec, own = _second_process(layout, "feature_store")
    try:
        await own.wait_ready()
        app = await _start(_settings(layout, feature_store_addr=spec.grpc_target), observed)
        try:
            await _wait_cache(app)
            own.processes["feature_store_2"].kill()
            return await ask(app)
        finally:
            await app.stop()
    finally:
        own.stop_all(grace_s=2)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", list(FILTERS))
async def test_filters_hold_on_every_path(
    stack: tuple[Layout, Stack], observed: Observed, path: str, name: str
) -> None:
    filters, rule = FILTERS[name]
    user = "never-seen-shopper" if path == "cold_start" else USER

    async def ask(app: Orchestrator) -> orchestrator_pb2.RecommendResponse:
        return await _ask(app, user_ref=user, filters=filters)

    response = await _on_path(stack, observed, path, ask)
    assert isinstance(response, orchestrator_pb2.RecommendResponse)
    assert {d.stage: d.reason for d in response.degraded_stages} == PATHS[path][1]
    got = list(response.items)
    assert len(got) == K
    assert not response.filtered_short
    assert len({i.item_id for i in got}) == K
    bad = [(i.item_id, list(i.category_path), i.price) for i in got if not rule(i)]
    assert not bad, bad
    if path == "cold_start":
        assert all(i.stages[0] == STAGE.STAGE_POPULARITY for i in got)


@pytest.fixture
async def full(stack: tuple[Layout, Stack], observed: Observed) -> AsyncIterator[Orchestrator]:
    app = await _start(_settings(stack[0]), observed)
    await _wait_cache(app)
    yield app
    await app.stop()


async def test_a_filter_leaving_fewer_than_k_says_so_and_does_not_fail(
    full: Orchestrator,
) -> None:
    # The leaf category the catalog holds fewest items of (fewer than k), by the cache.
    counts: dict[tuple[str, ...], int] = {}
    for f in full.popularity.items:
        counts[f.category_path] = counts.get(f.category_path, 0) + 1
    leaf, count = min(counts.items(), key=lambda kv: kv[1])
    assert count < K
    response = await _ask(full, filters=common_pb2.Filters(include_categories=[_prefix(*leaf)]))
    assert response.filtered_short
    assert 0 < len(response.items) < K
    assert all(tuple(i.category_path) == leaf for i in response.items)
    assert response.filtered_out_count > 0
    assert not response.next_page_token


async def test_bad_filters_are_invalid_argument(full: Orchestrator) -> None:
    for filters, message in [
        (common_pb2.Filters(min_price=30.0, max_price=10.0), "must not be above max_price"),
        (common_pb2.Filters(exclude_categories=[_prefix()]), "is an empty prefix"),
        (common_pb2.Filters(include_categories=[_prefix("a")] * 21), "at most 20 prefixes"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _ask(full, filters=filters)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.value.details() or "")


async def test_pages_never_repeat_an_item_and_keep_the_filter(full: Orchestrator) -> None:
    filters, rule = FILTERS["no_grocery_no_kitchen"]
    pages: list[list[Item]] = []
    token = ""
    for _ in range(3):
        response = await _ask(full, page_token=token, filters=filters)
        pages.append(list(response.items))
        token = response.next_page_token
        assert token
    shown = [i.item_id for page in pages for i in page]
    assert all(len(page) == K for page in pages)
    assert len(set(shown)) == len(shown) == 3 * K
    assert all(rule(i) for page in pages for i in page)


@pytest.mark.parametrize("path", ["reranker_down", "retrieval_down", "feature_store_killed"])
async def test_a_degraded_page_two_does_not_repeat_page_one(
    stack: tuple[Layout, Stack], observed: Observed, path: str
) -> None:
    # Page one from the full pipeline; page two from a degraded copy with the same key.
    settings = _settings(stack[0], page_token_key="k" * 32)
    first_app = await _start(settings, observed)
    try:
        first = await _ask(first_app)
    finally:
        await first_app.stop()
    assert first.next_page_token

    async def ask(app: Orchestrator) -> orchestrator_pb2.RecommendResponse:
        return await _ask(app, page_token=first.next_page_token)

    layout, _ = stack
    overrides = {k: dead_addr() for k in PATHS[path][0]}
    if path == "feature_store_killed":
        spec, own = _second_process(layout, "feature_store")
        try:
            await own.wait_ready()
            app = await _start(
                _settings(layout, feature_store_addr=spec.grpc_target, page_token_key="k" * 32),
                observed,
            )
            try:
                await _wait_cache(app)
                own.processes["feature_store_2"].kill()
                second = await ask(app)
            finally:
                await app.stop()
        finally:
            own.stop_all(grace_s=2)
    else:
        app = await _start(_settings(layout, page_token_key="k" * 32, **overrides), observed)
        try:
            await _wait_cache(app)
            second = await ask(app)
        finally:
            await app.stop()
    assert {d.stage: d.reason for d in second.degraded_stages} == PATHS[path][1]
    assert len(second.items) == K
    assert not {i.item_id for i in first.items} & {i.item_id for i in second.items}


async def test_tampered_or_mismatched_page_tokens_are_invalid_argument(full: Orchestrator) -> None:
    token = (await _ask(full)).next_page_token
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ask(full, page_token=flipped)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "altered or signed with another key" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ask(full, page_token=token, filters=FILTERS["toys_10_to_30"][0])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "belongs to another request" in (err.value.details() or "")
    # The same request with another k is the next page.
    assert (await _ask(full, page_token=token, k=3)).items
