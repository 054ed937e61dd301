"""Reasons per recommended item: the derivation on its own (services.orchestrator.reasons) and
on every path of the pipeline, driven through the in-memory backend of
tests/unit/test_orchestrator_degradation.py (full pipeline, ranker down, popularity fallback,
cold start, no release). The gRPC twin is in tests/service/test_orchestrator_pipeline.py."""

from __future__ import annotations

import re

from services.orchestrator.domain import (
    AnswerPath,
    Candidate,
    ItemFeatures,
    Outcome,
    ReasonKind,
    Stage,
)
from services.orchestrator.reasons import (
    MAX_REASONS,
    ShopperSignals,
    explain,
    most_similar_history_item,
    popular_in_category,
    reasons_for,
)
from tests.unit.test_orchestrator_degradation import (
    CATALOG,
    KNOWN,
    RELEASE,
    Dependencies,
    FakeClock,
    Harness,
    _settings,
)

K = 4
KIND_NAMES = {k.value for k in ReasonKind}


def _item(item_id: str, title: str, *path: str) -> ItemFeatures:
    return ItemFeatures(item_id=item_id, title=title, category_path=tuple(path))


def kinds(cand: Candidate) -> list[ReasonKind]:
    return [r.kind for r in cand.reasons]


def _no_counts(outcome: Outcome) -> None:
    """No reason text states a number of its own: quoted titles aside, no digit."""
    for cand in outcome.items:
        for reason in cand.reasons:
            assert not re.search(r"\d", re.sub(r'"[^"]*"', "", reason.text)), reason.text


def _every_item_explained(outcome: Outcome) -> None:
    assert outcome.items
    for cand in outcome.items:
        assert 1 <= len(cand.reasons) <= MAX_REASONS, cand.item_id
        assert all(r.text for r in cand.reasons)
        assert ReasonKind.NEW_ITEM not in kinds(cand)
    _no_counts(outcome)


# ---- the derivation on its own -------------------------------------------------------------


def test_the_most_similar_history_item_shares_words_then_depth_then_recency() -> None:
    mug = _item("A", "red ceramic mug", "home", "kitchen", "mugs")
    history = (
        _item("H1", "blue glass vase", "home", "decor"),  # nothing in common but "home"
        _item("H2", "red ceramic teapot", "home", "kitchen", "teapots"),  # two words
        _item("H3", "plain mug", "home", "kitchen", "mugs"),  # the same leaf, one word
        _item("A", "red ceramic mug", "home", "kitchen", "mugs"),  # the item itself
    )
    found = most_similar_history_item(mug, history)
    assert found is not None
    assert found.item_id == "H2"
    # Without the two-word match the same leaf qualifies; the vase never does.
    found = most_similar_history_item(mug, history[:1] + history[2:])
    assert found is not None
    assert found.item_id == "H3"
    assert most_similar_history_item(mug, history[:1]) is None
    # Two equally close items: the more recent (earlier in the history) wins.
    twins = (_item("N", "mug", "home", "kitchen", "mugs"), _item("O", "mug", *mug.category_path))
    found = most_similar_history_item(mug, twins)
    assert found is not None
    assert found.item_id == "N"


def test_popular_in_category_keeps_the_release_order_within_each_category() -> None:
    released = [
        _item("P1", "a", "toys"),
        _item("P2", "b", "home"),
        _item("P3", "c", "toys"),
        _item("P4", "d", "toys"),
        _item("P5", "e", ""),
    ]
    assert popular_in_category(released, 2) == {"P1": "toys", "P2": "home", "P3": "toys"}


def test_reasons_are_ordered_capped_and_never_empty() -> None:
    history = (_item("H", "wooden toy train", "toys", "trains"),)
    shopper = ShopperSignals(history, frozenset({"A"}), ("toys",))
    cand = Candidate(
        item_id="A",
        features=_item("A", "wooden toy train set", "toys", "trains"),
        stages=[Stage.RETRIEVAL, Stage.RANKER, Stage.RERANKER],
        relevance_rank=7,
    )
    got = reasons_for(cand, AnswerPath.PERSONAL, shopper, {"A": "toys"}, k=4)
    assert [r.kind for r in got] == [
        ReasonKind.BOUGHT_BEFORE,
        ReasonKind.SIMILAR_TO_HISTORY_ITEM,
        ReasonKind.PICKED_FOR_VARIETY,
    ]
    assert got[1].history_item_id == "H"
    assert got[1].text == 'Similar to "wooden toy train" from your history'
    # Placed where relevance alone would have put it: no variety claim.
    cand.relevance_rank = 3
    got = reasons_for(cand, AnswerPath.PERSONAL, shopper, {"A": "toys"}, k=4)
    assert ReasonKind.PICKED_FOR_VARIETY not in [r.kind for r in got]
    # Nothing specific: the path's own reason.
    plain = Candidate(item_id="Z", features=_item("Z", "lamp", "home"), stages=[Stage.RETRIEVAL])
    assert [r.kind for r in reasons_for(plain, AnswerPath.PERSONAL, shopper, {}, 4)] == [
        ReasonKind.MATCHES_HISTORY
    ]
    assert [r.kind for r in reasons_for(plain, AnswerPath.CATALOG_ORDER, shopper, {}, 4)] == [
        ReasonKind.CATALOG_ORDER
    ]


def test_similar_items_say_so_first_and_nothing_about_a_shopper() -> None:
    cand = Candidate(
        item_id="A",
        features=_item("A", "wooden toy train set", "toys", "trains"),
        stages=[Stage.RETRIEVAL, Stage.RERANKER],
        relevance_rank=6,
    )
    got = reasons_for(cand, AnswerPath.SIMILAR, ShopperSignals(), {"A": "toys"}, k=4)
    assert [r.kind for r in got] == [
        ReasonKind.SIMILAR_TO_ITEM,
        ReasonKind.PICKED_FOR_VARIETY,
        ReasonKind.POPULAR_IN_CATEGORY,
    ]
    assert got[0].text == "Similar to the item you are looking at"


def test_without_a_release_no_reason_mentions_popularity() -> None:
    popular = [CATALOG[i] for i in sorted(CATALOG)]
    items = [Candidate(item_id=f.item_id, features=f) for f in popular[:4]]
    explain(items, AnswerPath.CATALOG_ORDER, ShopperSignals(), popular, "", K)
    assert all(kinds(c) == [ReasonKind.CATALOG_ORDER] for c in items)
    explain(items, AnswerPath.CATALOG_ORDER, ShopperSignals(), popular, RELEASE, K)
    assert all(ReasonKind.POPULAR_IN_CATEGORY in kinds(c) for c in items)


def test_every_domain_kind_is_a_public_enum_value() -> None:
    from shared.gen.acme.recsys.v1 import orchestrator_pb2

    public = set(orchestrator_pb2.ReasonKind.keys()) - {"REASON_KIND_UNSPECIFIED"}
    assert public == KIND_NAMES


# ---- on every path of the pipeline ---------------------------------------------------------


async def _harness(deps: Dependencies, *, cached: bool = True) -> Harness:
    h = Harness(deps, _settings())
    if cached:
        await h.fill_cache()
    return h


async def test_full_pipeline_reasons_come_from_the_shoppers_history() -> None:
    # The reranker puts I01 (bought before, low relevance) first: a diversity pick.
    deps = Dependencies(FakeClock(), rerank_extra_ids=("I01",))
    h = await _harness(deps)
    out = await h.recommend(k=K)
    assert not out.degraded
    _every_item_explained(out)
    history = {CATALOG[i].category: i for i in KNOWN.recent_item_ids}  # garden: I03, kitchen: I07
    for cand in out.items:
        reasons = {r.kind: r for r in cand.reasons}
        if cand.category in history and cand.item_id != history[cand.category]:
            similar = reasons[ReasonKind.SIMILAR_TO_HISTORY_ITEM]
            assert similar.history_item_id == history[cand.category]
            assert CATALOG[history[cand.category]].title in similar.text
        else:
            assert ReasonKind.SIMILAR_TO_HISTORY_ITEM not in reasons
        # Variety is claimed exactly for the items relevance alone would not have shown.
        assert cand.relevance_rank is not None
        assert (ReasonKind.PICKED_FOR_VARIETY in reasons) == (cand.relevance_rank >= K)
        if cand.category == "toys":  # a favourite category without a history item
            assert reasons[ReasonKind.IN_FAVOURITE_CATEGORY].category == "toys"
    first = out.items[0]
    assert first.item_id == "I01"
    assert kinds(first) == [
        ReasonKind.BOUGHT_BEFORE,
        ReasonKind.SIMILAR_TO_HISTORY_ITEM,
        ReasonKind.PICKED_FOR_VARIETY,
    ]
    assert not any(
        k in kinds(c)
        for c in out.items
        for k in (ReasonKind.COLD_START_POPULAR, ReasonKind.POPULAR_FALLBACK)
    )


async def test_ranker_down_keeps_the_history_reasons() -> None:
    deps = Dependencies(FakeClock(), down={"ranker"})
    h = await _harness(deps)
    out = await h.recommend(k=K)
    assert Stage.RANKER in out.degraded_stages
    _every_item_explained(out)
    assert all(Stage.RANKER not in c.stages for c in out.items)
    similar = [r for c in out.items for r in c.reasons if r.history_item_id]
    assert similar
    assert {r.history_item_id for r in similar} <= set(KNOWN.recent_item_ids)


async def test_popularity_fallback_says_so_first_and_uses_only_the_shoppers_own_signals() -> None:
    deps = Dependencies(FakeClock(), down={"retrieval"})
    h = await _harness(deps)
    out = await h.recommend(k=K)
    assert Stage.RETRIEVAL in out.degraded_stages
    _every_item_explained(out)
    for cand in out.items:
        assert kinds(cand)[0] is ReasonKind.POPULAR_FALLBACK
        popular = [r for r in cand.reasons if r.kind is ReasonKind.POPULAR_IN_CATEGORY]
        assert all(r.category == cand.category for r in popular)
    # The feature store down too: nothing is known of the shopper, so nothing personal.
    deps.down = {"feature_store"}
    out = await h.recommend(k=K)
    _every_item_explained(out)
    personal = {
        ReasonKind.SIMILAR_TO_HISTORY_ITEM,
        ReasonKind.BOUGHT_BEFORE,
        ReasonKind.IN_FAVOURITE_CATEGORY,
    }
    assert not personal & {k for c in out.items for k in kinds(c)}
    assert all(kinds(c)[0] is ReasonKind.POPULAR_FALLBACK for c in out.items)


async def test_cold_start_reasons_are_the_dp_release() -> None:
    deps = Dependencies(FakeClock())
    h = await _harness(deps)
    out = await h.recommend(user_ref="never-seen", k=K)
    assert out.versions["popularity_release"] == RELEASE
    _every_item_explained(out)
    for cand in out.items:
        assert kinds(cand)[0] is ReasonKind.COLD_START_POPULAR
        assert not any(r.history_item_id for r in cand.reasons)
        assert ReasonKind.BOUGHT_BEFORE not in kinds(cand)


async def test_before_any_release_no_reason_mentions_popularity() -> None:
    deps = Dependencies(FakeClock(), release="")
    h = await _harness(deps)
    for query, down in (({"user_ref": "never-seen"}, set()), ({}, {"retrieval"})):
        deps.down = down
        out = await h.recommend(k=K, **query)
        assert Stage.POPULARITY in out.degraded_stages
        _every_item_explained(out)
        for cand in out.items:
            assert not {
                ReasonKind.POPULAR_IN_CATEGORY,
                ReasonKind.COLD_START_POPULAR,
                ReasonKind.POPULAR_FALLBACK,
            } & set(kinds(cand))
            assert all("opular" not in r.text for r in cand.reasons)


def test_a_new_popularity_list_or_release_changes_the_popular_in_category_reasons() -> None:
    # explain() keeps the per-category tops of the last list it saw: a refreshed list (a new
    # object) or a new release must not be answered from that.
    shopper = ShopperSignals(history=())

    def reasons(popular: list[ItemFeatures], release: str) -> list[str]:
        cand = Candidate(item_id="P1", features=popular[0], stages=[Stage.RETRIEVAL])
        explain([cand], AnswerPath.PERSONAL, shopper, popular, release, K)
        return [r.text for r in cand.reasons]

    first = [_item("P1", "a", "toys")]
    assert any("Popular in toys" in t for t in reasons(first, "r1"))
    assert any("Popular in toys" in t for t in reasons(first, "r1"))
    # The same item is no longer among the released top of its category.
    moved = [_item("P2", "b", "home")] + [_item(f"T{i}", "t", "toys") for i in range(6)]
    moved.append(_item("P1", "a", "toys"))
    assert not any("Popular in" in t for t in reasons(moved, "r1"))  # same release, new list
    assert not any("Popular in" in t for t in reasons(moved, "r2"))
    assert not any("Popular in" in t for t in reasons(moved, ""))
