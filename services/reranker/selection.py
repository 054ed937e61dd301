"""The result type of every reranking method, the per-category cap, and the relevance order."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Selection:
    """Chosen candidate positions in display order.

    ``scores[i]`` is the method's selection score of ``indices[i]`` at the moment it was picked.
    ``diversified`` counts the leading items the diversity method chose; the rest (if any) were
    filled in relevance order after the method stopped early.
    """

    indices: np.ndarray
    scores: np.ndarray
    diversified: int


class CategoryCap:
    """At most ``limit`` picks per category code; 0 or no codes means no cap.

    Items without a category carry a code of their own (see kernel.category_codes), so the cap
    never binds on them.
    """

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


def top_by_relevance(
    relevance: np.ndarray, k: int, codes: np.ndarray | None = None, max_per_category: int = 0
) -> Selection:
    """The k most relevant items (stable on ties) under the optional category cap.

    Selection scores are the relevance values as given.
    """
    r = np.asarray(relevance, dtype=np.float64)
    eligible = np.ones(r.size, dtype=bool)
    chosen = fill_by_relevance(r, k, [], eligible, CategoryCap(codes, max_per_category))
    idx = np.asarray(chosen, dtype=np.int64)
    return Selection(idx, r[idx], 0)
