"""Withdrawn items (out of stock, retired) on every Recommend path, through the in-memory
dependencies of test_orchestrator_degradation: the store's live availability is enough
wherever the store answers, even when the retrieval index and the popularity cache still
hold the item; with the store down, what the cache and the index knew at the withdrawal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import grpc
import pytest

from services.orchestrator.domain import (
    ItemLookup,
    PopularItems,
    Reason,
    RetrievalResult,
    Stage,
)
from tests.unit.test_orchestrator_degradation import (
    SHOPPER,
    Dependencies,
    FakeClock,
    Harness,
    _settings,
    degraded,
    ids,
)

# Every source's favourites: retrieval's top, the DP release's top, the raw cold-start order.
WITHDRAWN = frozenset({"I00", "I11", "I05", "I06"})


@dataclass
class Store(Dependencies):
    """The dependencies with availability: ``withdrawn`` in the store (its reads flag them,
    its popular list leaves them out, as services.feature_store does), ``removed`` in the
    retrieval index (RemoveItems)."""

    withdrawn: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)

    async def item_features(self, item_ids: Sequence[str], timeout_s: float) -> ItemLookup:
        found = await super().item_features(item_ids, timeout_s)
        return ItemLookup(
            tuple(replace(f, available=f.item_id not in self.withdrawn) for f in found.items),
            found.missing_item_ids,
        )

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> PopularItems:
        return await super().popular_items(
            limit, [*excluded_item_ids, *sorted(self.withdrawn)], timeout_s
        )

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult:
        return await super().retrieve(
            history, n, [*excluded_item_ids, *sorted(self.removed)], timeout_s
        )


@pytest.mark.parametrize(
    ("down", "cached"),
    [
        (set(), True),
        ({"retrieval"}, True),
        ({"retrieval"}, False),
        ({"ranker"}, True),
        ({"reranker"}, True),
        ({"ranker", "reranker"}, True),
    ],
)
@pytest.mark.parametrize("shopper", [SHOPPER, "never-seen"])
async def test_the_stores_flag_alone_withdraws_an_item_on_every_path_it_answers(
    down: set[str], cached: bool, shopper: str
) -> None:
    deps = Store(FakeClock())
    h = Harness(deps, _settings())
    if cached:
        await h.fill_cache()  # before the withdrawal: the cache still lists the items
    before = await h.recommend(user_ref=shopper, k=6)
    deps.withdrawn |= WITHDRAWN  # the index was NOT told
    deps.down |= down
    out = await h.recommend(user_ref=shopper, k=6)
    assert set(ids(before)) & WITHDRAWN, "the test must withdraw items that were shown"
    assert out.items
    assert not set(ids(out)) & WITHDRAWN
    assert Stage.FEATURE_STORE not in degraded(out)


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("shopper", [SHOPPER, "never-seen"])
async def test_with_the_store_down_the_cache_and_index_keep_withdrawn_items_out(
    cached: bool, shopper: str
) -> None:
    deps = Store(FakeClock(), withdrawn=set(WITHDRAWN), removed=set(WITHDRAWN))
    h = Harness(deps, _settings())
    if cached:
        await h.fill_cache()  # refreshed after the withdrawal
    deps.down.add("feature_store")
    out = await h.recommend(user_ref=shopper, k=6)
    assert out.items
    assert not set(ids(out)) & WITHDRAWN
    assert degraded(out)[Stage.FEATURE_STORE] is Reason.UNAVAILABLE


async def test_a_failing_availability_check_serves_the_cache_flagged() -> None:
    deps = Store(FakeClock())
    h = Harness(deps, _settings())
    await h.fill_cache()
    deps.withdrawn |= WITHDRAWN
    await h.fill_cache()  # the cache learns of the withdrawal ...
    deps.withdrawn.clear()
    deps.down.add("retrieval")
    deps.failing["item_features"] = grpc.StatusCode.UNAVAILABLE
    out = await h.recommend(k=6)  # ... and the live check of its head fails
    assert not set(ids(out)) & WITHDRAWN
    assert degraded(out)[Stage.FEATURE_STORE] is Reason.UNAVAILABLE


async def test_every_candidate_withdrawn_serves_available_popular_items() -> None:
    deps = Store(FakeClock())
    h = Harness(deps, _settings(candidate_count=3))
    await h.fill_cache()
    first = await h.recommend(k=3)
    deps.withdrawn |= set(ids(first))  # the index still returns exactly these three
    out = await h.recommend(k=3)
    assert len(out.items) == 3
    assert not set(ids(out)) & deps.withdrawn
    assert {tuple(c.stages) for c in out.items} == {(Stage.POPULARITY,)}
    assert not out.degraded
