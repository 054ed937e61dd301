"""The category-capped top k by relevance: the one implementation the reranker (its ``NONE``
method, trade-off 0, and the fill after a diversity method stops early) and the orchestrator
(its fallback when the reranker is down, and the fill of a short reranked page) share, so both
apply the same cap the same way.

Ties keep input order (a stable sort). An item without a category is a category of its own,
so the cap never binds on uncategorised items.

A category is either a label or a path from the top level down to the leaf
(``("toys", "crafts", "crayons")``); a label is the one-level path ``(label,)``. The category of
an item at level ``l`` is the prefix of its path of length ``l``, so level 1 is the top level and
a path shorter than ``l`` is its own category from its leaf down: two items share a category at
level ``l`` exactly when their paths agree on the first ``l`` entries, or are equal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Category = str | Sequence[str]
"""A top-level label or a category path; ``""`` and ``()`` both mean "no category"."""


def category_path(category: Category) -> tuple[str, ...]:
    """The path of a category: a label becomes a one-level path, "" the empty path."""
    if isinstance(category, str):
        return (category,) if category else ()
    return tuple(category)


def category_codes(categories: Sequence[Category], level: int = 1) -> np.ndarray:
    """Integer code per item of its category at ``level`` (1 is the top level): equal prefixes
    share a code, each item without a category gets a code of its own."""
    if level < 1:
        raise ValueError("level must be >= 1 (1 is the top level)")
    keys = [category_path(c)[:level] for c in categories]
    codes = np.empty(len(keys), dtype=np.int64)
    seen: dict[tuple[str, ...], int] = {}
    for i, key in enumerate(keys):
        if key:
            codes[i] = seen.setdefault(key, len(seen))
    fresh = len(seen)
    for i, key in enumerate(keys):
        if not key:
            codes[i] = fresh
            fresh += 1
    return codes


class CategoryCap:
    """At most ``limit`` picks per category code; 0 or no codes means no cap."""

    def __init__(self, codes: np.ndarray | None, limit: int) -> None:
        if limit < 0:
            raise ValueError("max_per_category must be >= 0")
        self._codes = codes if limit > 0 else None
        self._limit = limit
        self._left: np.ndarray | None = None
        if self._codes is not None and self._codes.size:
            self._left = np.full(int(self._codes.max()) + 1, limit, dtype=np.int64)

    def take(self, j: int, eligible: np.ndarray) -> bool:
        """Record the pick of ``j`` and clear its ``eligible`` flag; when that fills its
        category, clear the flag of every item of the category and return True."""
        eligible[j] = False
        if self._codes is None or self._left is None:
            return False
        code = self._codes[j]
        self._left[code] -= 1
        if self._left[code] > 0:
            return False
        eligible[self._codes == code] = False
        return True


def relevance_order(relevance: np.ndarray) -> np.ndarray:
    """Positions by decreasing relevance, ties in input order (a stable sort)."""
    return np.argsort(-np.asarray(relevance, dtype=np.float64), kind="stable")


def fill_by_relevance(
    relevance: np.ndarray,
    k: int,
    chosen: list[int],
    eligible: np.ndarray,
    cap: CategoryCap,
) -> list[int]:
    """Append eligible items in relevance order until ``k`` are chosen or none is left."""
    for j in relevance_order(relevance):
        if len(chosen) >= k:
            break
        if eligible[j]:
            chosen.append(int(j))
            cap.take(int(j), eligible)
    return chosen


def capped_top_k(
    relevance: np.ndarray | Sequence[float],
    k: int,
    codes: np.ndarray | None = None,
    max_per_category: int = 0,
    *,
    taken: int = 0,
) -> np.ndarray:
    """Positions of the k most relevant items under the optional category cap.

    The first ``taken`` positions are items already on the page: they count against the cap
    and are never chosen again; the positions returned are among the rest.
    """
    r = np.asarray(relevance, dtype=np.float64)
    if not 0 <= taken <= r.size:
        raise ValueError("taken must be in [0, len(relevance)]")
    eligible = np.ones(r.size, dtype=bool)
    cap = CategoryCap(codes, max_per_category)
    chosen = list(range(taken))
    for j in chosen:
        cap.take(j, eligible)
    fill_by_relevance(r, taken + k, chosen, eligible, cap)
    return np.asarray(chosen[taken:], dtype=np.int64)


def top_k_by_category(
    relevance: Sequence[float],
    categories: Sequence[Category],
    k: int,
    max_per_category: int = 0,
    taken: Sequence[Category] = (),
    *,
    level: int = 1,
) -> list[int]:
    """``capped_top_k`` over category labels or paths, capped at ``level``; ``taken`` holds the
    categories of the items already on the page. Returns positions into ``relevance``."""
    if len(relevance) != len(categories):
        raise ValueError("relevance and categories must have one value per item")
    offset = len(taken)
    codes = category_codes([*taken, *categories], level)
    scores = np.concatenate([np.zeros(offset), np.asarray(relevance, dtype=np.float64)])
    picked = capped_top_k(scores, k, codes, max_per_category, taken=offset)
    return [int(j) - offset for j in picked]
