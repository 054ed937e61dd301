"""Each filter through each path of Recommend, over the in-memory dependencies of
test_orchestrator_degradation (real FAISS cold-start code, exclusions honoured as the services
do). Every answer is checked against the catalog directly, not through the predicate under
test. The process-level twin is tests/service/test_orchestrator_filters.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import grpc
import pytest

from services.orchestrator.domain import Outcome, Stage
from shared.filters import MAX_PREFIXES, InvalidFilter, ItemFilter
from tests.unit.test_orchestrator_degradation import (
    CATALOG,
    RETRIEVAL_ORDER,
    Dependencies,
    FakeClock,
    Harness,
    K,
    _settings,
)


def _toys(i: str) -> bool:
    return CATALOG[i].category_path[0] == "toys"


def _not_kitchen(i: str) -> bool:
    return CATALOG[i].category_path[0] != "kitchen"


def _price_3_to_7(i: str) -> bool:
    return 3.0 <= CATALOG[i].price <= 7.0


def _not_first_six(i: str) -> bool:
    return i not in RETRIEVAL_ORDER[:6]


# (filter, the rule checked on the catalog directly)
FILTERS: dict[str, tuple[ItemFilter, Callable[[str], bool]]] = {
    "include_category": (ItemFilter.create(include_categories=[["Toys"]]), _toys),
    "exclude_category": (ItemFilter.create(exclude_categories=[["kitchen", "sub"]]), _not_kitchen),
    "price_range": (ItemFilter.create(min_price=3.0, max_price=7.0), _price_3_to_7),
    "excluded_ids": (ItemFilter.create(excluded_item_ids=RETRIEVAL_ORDER[:6]), _not_first_six),
}


async def _full(h: Harness) -> None:
    await h.fill_cache()


async def _ranker_down(h: Harness) -> None:
    await h.fill_cache()
    h.deps.down.add("ranker")


async def _reranker_down(h: Harness) -> None:
    await h.fill_cache()
    h.deps.down.add("reranker")


async def _store_down(h: Harness) -> None:
    await h.fill_cache()
    h.deps.down.add("feature_store")


async def _retrieval_down(h: Harness) -> None:
    await h.fill_cache()
    h.deps.down.add("retrieval")


async def _item_features_refused(h: Harness) -> None:
    await h.fill_cache()
    h.deps.failing["item_features"] = grpc.StatusCode.RESOURCE_EXHAUSTED


async def _empty_cache_retrieval_down(h: Harness) -> None:
    h.deps.down.add("retrieval")  # the store's live list answers


async def _cold_start_no_release(h: Harness) -> None:
    h.deps.index = []  # nothing cached either: retrieval's catalog order, then rank/rerank


async def _cold_start_dp_release(h: Harness) -> None:
    await h.fill_cache()
    h.deps.index = []


Setup = Callable[[Harness], Awaitable[None]]
# (set-up, whether the answer can verify attributes and so be full)
PATHS: dict[str, Setup] = {
    "full": _full,
    "ranker_down": _ranker_down,
    "reranker_down": _reranker_down,
    "feature_store_down": _store_down,
    "retrieval_down": _retrieval_down,
    "item_features_refused": _item_features_refused,
    "empty_cache_retrieval_down": _empty_cache_retrieval_down,
    "cold_start_no_release": _cold_start_no_release,
    "cold_start_dp_release": _cold_start_dp_release,
}


async def _run(path: str, item_filter: ItemFilter, **settings: object) -> tuple[Outcome, Harness]:
    deps = Dependencies(FakeClock())
    h = Harness(deps, _settings(**settings))
    await PATHS[path](h)
    return await h.recommend(filters=item_filter), h


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", list(FILTERS))
async def test_every_filter_holds_on_every_path(path: str, name: str) -> None:
    item_filter, rule = FILTERS[name]
    out, _ = await _run(path, item_filter)
    got = [c.item_id for c in out.items]
    assert all(rule(i) for i in got), (path, name, got)
    # Each filter leaves at least K catalog items, and every path can still show them.
    assert len(got) == K, (path, name, got)
    assert len(set(got)) == K


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_filter_leaving_fewer_than_k_returns_what_is_left(path: str) -> None:
    # Toys at most 3.0: only I02 (price 3.0, inclusive).
    item_filter = ItemFilter.create(include_categories=[["toys"]], max_price=3.0)
    out, _ = await _run(path, item_filter)
    assert [c.item_id for c in out.items] == ["I02"]


async def test_filtered_candidates_do_not_take_candidate_slots() -> None:
    # Over-fetch 1: the first retrieval round gives 8 candidates, 2 of them toys; the next
    # round (excluding what was seen) brings the other toys, so the ranker sees all four.
    out, h = await _run("full", FILTERS["include_category"][0], filter_overfetch=1)
    assert h.deps.called().count("retrieve") == 2
    scored = h.deps.rerank_requests[0].candidates
    assert sorted(c.item_id for c in scored) == ["I02", "I05", "I08", "I11"]
    assert out.filtered_out == 8
    assert sorted(c.item_id for c in out.items) == ["I02", "I05", "I08", "I11"]


@pytest.mark.parametrize(("name", "asked"), [("price_range", 8 * 4), ("excluded_ids", 8)])
async def test_over_fetch_only_with_a_filter_on_attributes(name: str, asked: int) -> None:
    deps = Dependencies(FakeClock())
    h = Harness(deps, _settings())
    await h.fill_cache()
    sizes: list[int] = []
    answer = deps.retrieve

    async def retrieve(history: Sequence[str], n: int, excluded: Sequence[str], t: float):  # type: ignore[no-untyped-def]
        sizes.append(n)
        return await answer(history, n, excluded, t)

    deps.retrieve = retrieve  # type: ignore[method-assign]
    await h.recommend(filters=FILTERS[name][0])
    # Candidate count 8, times the default over-fetch of 4 when category or price is read.
    assert sizes == [asked]


async def test_store_down_without_any_cache_gives_an_empty_answer_not_unverified_items() -> None:
    deps = Dependencies(FakeClock())
    h = Harness(deps, _settings())
    deps.down.add("feature_store")
    out = await h.recommend(filters=FILTERS["include_category"][0])
    assert out.items == []
    assert Stage.FEATURE_STORE in out.degraded_stages
    # An id filter needs no attributes: retrieval's cold-start list still answers.
    ids_only = await h.recommend(filters=FILTERS["excluded_ids"][0])
    assert [c.item_id for c in ids_only.items] == RETRIEVAL_ORDER[6 : 6 + K]


def test_bad_filters_are_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidFilter, match=r"min_price \(5.0\) must not be above max_price"):
        ItemFilter.create(min_price=5.0, max_price=2.0)
    with pytest.raises(InvalidFilter, match=r"include_categories\[0\] is an empty prefix"):
        ItemFilter.create(include_categories=[[]])
    with pytest.raises(InvalidFilter, match="empty level"):
        ItemFilter.create(exclude_categories=[["home", " "]])
    with pytest.raises(InvalidFilter, match=f"at most {MAX_PREFIXES} prefixes"):
        ItemFilter.create(include_categories=[[f"c{i}"] for i in range(MAX_PREFIXES + 1)])
    with pytest.raises(InvalidFilter, match="finite price"):
        ItemFilter.create(min_price=float("nan"))
    with pytest.raises(InvalidFilter, match="finite price"):
        ItemFilter.create(max_price=-1.0)


def test_prefixes_match_whole_levels_from_the_root() -> None:
    f = ItemFilter.create(include_categories=[["home", "kitchen"]])
    assert f.accepts("a", ["Home", "Kitchen", "mugs"], 1.0)
    assert f.accepts("a", ["home", "kitchen"], 1.0)
    assert not f.accepts("a", ["home"], 1.0)
    assert not f.accepts("a", ["home", "kitchenware"], 1.0)
    assert not f.accepts("a", ["garden", "home", "kitchen"], 1.0)
    # Unknown attributes fail a filter that reads them, never an id-only one.
    assert not f.accepts("a", None, None)
    assert ItemFilter.create(excluded_item_ids=["b"]).accepts("a", None, None)
