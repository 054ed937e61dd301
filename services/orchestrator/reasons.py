"""Why each recommended item is on the list: structured reasons derived from what the
orchestrator already knows for the request, with no extra call.

The inputs are the shopper's own signals (the history's item features, purchases and
favourite categories from the feature store's UserFeatures), the pipeline's own decisions
(which path answered, which stages placed the item, whether the diversity reranker chose it
over more relevant items) and the DP popularity release. Nothing else about other shoppers is
used: a popularity reason is stated only from a DP release (the popularity cache, whose order
is the released noisy counts), so a reason discloses no more than the release already does.
Before any release exists, no reason mentions popularity.

Per item, the reasons are in this order, at most ``MAX_REASONS``: bought before, similar to a
history item, picked for variety, in a favourite category, popular in its category; when none
applies, the path's own reason (matches your history, cold-start popular, popular fallback,
catalog order); on a SimilarItems answer "similar to the item you are looking at" comes first.
Every item has at least one. ``NEW_ITEM`` is not emitted: item features carry
no first-seen date yet.

Pure domain code: no grpc, no protobuf (servicer.py converts the reasons).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.orchestrator.domain import (
    AnswerPath,
    Candidate,
    ItemFeatures,
    ItemReason,
    ReasonKind,
    Stage,
)

MAX_REASONS = 3
# An item is "popular in its category" when it is among this many of the release's most
# popular items of that top-level category.
TOP_IN_CATEGORY = 5
# Title words two items must share to count as similar when their category paths differ.
MIN_SHARED_WORDS = 2
# Longest title quoted in a reason's text.
MAX_QUOTED_TITLE = 60
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


@dataclass(frozen=True)
class ShopperSignals:
    """What the request knows of the shopper, all from their own events: the history's
    features (newest first), the items they bought and their favourite top-level
    categories."""

    history: tuple[ItemFeatures, ...] = ()
    purchased_item_ids: frozenset[str] = frozenset()
    favourite_categories: tuple[str, ...] = ()


@functools.lru_cache(maxsize=16_384)
def _words(title: str) -> frozenset[str]:
    # Cached: every answered item is compared with every history title, per request.
    return frozenset(w.lower() for w in _WORD.findall(title))


def _quote(title: str) -> str:
    title = " ".join(title.split())
    if len(title) > MAX_QUOTED_TITLE:
        title = title[: MAX_QUOTED_TITLE - 1].rstrip() + "…"
    return f'"{title}"'


def _shared_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    depth = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        depth += 1
    return depth


def most_similar_history_item(
    item: ItemFeatures, history: Sequence[ItemFeatures]
) -> ItemFeatures | None:
    """The history item closest to ``item``: the same full category path, or at least
    ``MIN_SHARED_WORDS`` title words in common; the most shared words, then the deepest shared
    category prefix, then the most recent wins. None when no history item qualifies."""
    words = _words(item.title)
    best: tuple[int, int, int] | None = None
    found = None
    for position, past in enumerate(history):
        if past.item_id == item.item_id:
            continue
        shared = len(words & _words(past.title))
        depth = _shared_prefix(item.category_path, past.category_path)
        same_leaf = bool(item.category_path) and tuple(item.category_path) == tuple(
            past.category_path
        )
        if not same_leaf and shared < MIN_SHARED_WORDS:
            continue
        key = (shared, depth, -position)
        if best is None or key > best:
            best, found = key, past
    return found


def popular_in_category(popular: Iterable[ItemFeatures], per_category: int) -> dict[str, str]:
    """Item id -> top-level category, for the ``per_category`` first items of each category
    in a DP popularity list (most popular first): post-processing of the release."""
    seen: dict[str, int] = {}
    out: dict[str, str] = {}
    for item in popular:
        category = item.category
        if not category or seen.get(category, 0) >= per_category:
            continue
        seen[category] = seen.get(category, 0) + 1
        out[item.item_id] = category
    return out


# The last popularity list's categories: the orchestrator keeps one list per release and
# passes the same object to every answer until the next refresh. Holding the list itself keeps
# its id from being reused by another.
_last_popular: tuple[Sequence[ItemFeatures], str, dict[str, str]] | None = None


def _popular_by_category(popular: Sequence[ItemFeatures], release_id: str) -> dict[str, str]:
    global _last_popular
    last = _last_popular
    if last is not None and last[0] is popular and last[1] == release_id:
        return last[2]
    by_category = popular_in_category(popular, TOP_IN_CATEGORY)
    _last_popular = (popular, release_id, by_category)
    return by_category


def _path_reason(path: AnswerPath, cand: Candidate, shopper: ShopperSignals) -> ItemReason:
    if path is AnswerPath.SIMILAR:
        return ItemReason(ReasonKind.SIMILAR_TO_ITEM, "Similar to the item you are looking at")
    if path is AnswerPath.COLD_START:
        return ItemReason(
            ReasonKind.COLD_START_POPULAR, "Popular with shoppers while we learn your taste"
        )
    if path is AnswerPath.POPULARITY_FALLBACK:
        return ItemReason(
            ReasonKind.POPULAR_FALLBACK,
            "Popular with shoppers (personal picks are unavailable right now)",
        )
    if path is AnswerPath.PERSONAL and shopper.history and Stage.RETRIEVAL in cand.stages:
        return ItemReason(ReasonKind.MATCHES_HISTORY, "Matches what you viewed and bought")
    return ItemReason(ReasonKind.CATALOG_ORDER, "From our catalog")


def reasons_for(
    cand: Candidate,
    path: AnswerPath,
    shopper: ShopperSignals,
    popular_by_category: dict[str, str],
    k: int,
) -> list[ItemReason]:
    """The reasons of one item on a page of ``k``; see the module docstring for the order."""
    out: list[ItemReason] = []
    features = cand.features
    if cand.item_id in shopper.purchased_item_ids:
        out.append(ItemReason(ReasonKind.BOUGHT_BEFORE, "You bought this before"))
    if features is not None:
        similar = most_similar_history_item(features, shopper.history)
        if similar is not None:
            out.append(
                ItemReason(
                    ReasonKind.SIMILAR_TO_HISTORY_ITEM,
                    f"Similar to {_quote(similar.title or similar.item_id)} from your history",
                    history_item_id=similar.item_id,
                )
            )
    if (
        Stage.RERANKER in cand.stages
        and cand.relevance_rank is not None
        and cand.relevance_rank >= k
    ):
        out.append(ItemReason(ReasonKind.PICKED_FOR_VARIETY, "Picked to add variety to your list"))
    category = cand.category
    if category and category in shopper.favourite_categories:
        out.append(
            ItemReason(
                ReasonKind.IN_FAVOURITE_CATEGORY,
                f"In {category}, one of your favourite categories",
                category=category,
            )
        )
    released_category = popular_by_category.get(cand.item_id)
    if released_category:
        out.append(
            ItemReason(
                ReasonKind.POPULAR_IN_CATEGORY,
                f"Popular in {released_category}",
                category=released_category,
            )
        )
    if path in (AnswerPath.COLD_START, AnswerPath.POPULARITY_FALLBACK, AnswerPath.SIMILAR):
        # How the list was made is why every item is there: it comes first.
        out.insert(0, _path_reason(path, cand, shopper))
    elif not out:
        out.append(_path_reason(path, cand, shopper))
    return out[:MAX_REASONS]


def explain(
    items: Sequence[Candidate],
    path: AnswerPath,
    shopper: ShopperSignals,
    popular: Sequence[ItemFeatures],
    release_id: str,
    k: int,
) -> None:
    """Set ``reasons`` on every item of an answer. ``popular`` is the DP popularity list in
    use and ``release_id`` its release; without a release no reason mentions popularity."""
    by_category = _popular_by_category(popular, release_id) if release_id else {}
    for cand in items:
        cand.reasons = reasons_for(cand, path, shopper, by_category, k)
