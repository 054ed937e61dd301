"""Item similarity kernel S shared by DPP and MMR, and per-request relevance normalisation.

S blends two positive semi-definite (PSD) matrices with unit diagonals:

    S = (1 - w) * C + w * H

C is the cosine similarity of the item embeddings (the Gram matrix of the L2-normalised
vectors; an all-zero vector is similar only to itself, i.e. it gets its own orthogonal
direction). H is the hierarchical category similarity: with category paths from the top level
to the leaf and level weights b_1..b_D (non-negative, scaled here to sum to 1),

    H = sum_l b_l * G_l,    G_l[i, j] = 1 when i and j share their category at level l,

where the category at level l is the path's prefix of length l (shared.selection: a shorter path
is its own category from its leaf down, an item without a category is its own at every level).
So H[i, j] = b_1 + ... + b_m, m the depth of the prefix i and j share, and H[i, j] = 1 for two
items on the same path. Each G_l is the Gram matrix of one-hot indicators of a partition of the
items, PSD with a unit diagonal; a convex combination of such matrices is too, and so is S.
Every principal minor is therefore a valid DPP volume and the Cholesky residuals of the greedy
algorithms lie in [0, 1]. With the single weight (1,) H is "same top-level category or not";
levels deeper than D carry no weight.

w is ``category_weight`` when both embeddings and categories are given, 0 without categories
and 1 without embeddings (without either, S is the identity and only relevance matters).

Rows are computed on demand, because the greedy algorithms read only the k rows of the items
they pick: O(k N (d + D)) work instead of O(N^2 (d + D)) for the full matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.reranker.config import DEFAULT_LEVEL_WEIGHTS
from shared.selection import Category, category_codes, category_path


def level_weights_of(weights: Sequence[float]) -> np.ndarray:
    """The level weights scaled to sum to 1; raises ValueError unless every weight is finite
    and non-negative and one is positive."""
    b = np.asarray(weights, dtype=np.float64)
    if b.ndim != 1 or b.size == 0:
        raise ValueError("level weights must be a non-empty sequence")
    if not np.isfinite(b).all() or (b < 0).any() or not b.sum() > 0:
        raise ValueError("level weights must be finite, non-negative and not all zero")
    return b / b.sum()


def normalise_relevance(relevance: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] within the request; all zeros when every score is equal.

    Ranker scores are logits on an arbitrary scale; scaling per request makes the trade-off
    knob mean the same thing whatever model produced them.
    """
    r = np.asarray(relevance, dtype=np.float64)
    if r.size == 0:
        return r.copy()
    lo, hi = float(r.min()), float(r.max())
    if not hi > lo:
        return np.zeros_like(r)
    # Halving first keeps hi - lo finite even for scores near the float64 limits.
    return np.clip((r / 2 - lo / 2) / (hi / 2 - lo / 2), 0.0, 1.0)


class SimilarityKernel:
    """The PSD similarity S over N candidates, read one row at a time.

    ``categories`` holds a top-level label or a category path per candidate (both may be
    empty); ``level_weights`` are b_1..b_D of the module docstring, any positive scale.
    """

    def __init__(
        self,
        n: int,
        embeddings: np.ndarray | None = None,
        categories: Sequence[Category] | None = None,
        category_weight: float = 0.3,
        *,
        level_weights: Sequence[float] = DEFAULT_LEVEL_WEIGHTS,
    ) -> None:
        if not 0.0 <= category_weight <= 1.0:
            raise ValueError("category_weight must be in [0, 1]")
        beta = level_weights_of(level_weights)
        self.n = n
        self._unit: np.ndarray | None = None
        if embeddings is not None and embeddings.size and embeddings.shape[1] > 0:
            if embeddings.shape[0] != n:
                raise ValueError(f"expected {n} embeddings, got {embeddings.shape[0]}")
            # float64 throughout: in float32 an exact duplicate keeps a residual near 1e-7 and
            # would not be recognised as one. One copy, normalised in place.
            e = np.array(embeddings, dtype=np.float64)
            # Scaling each row by its largest magnitude first keeps the squares finite and
            # nonzero for any finite input (1e300 or 1e-300 alike).
            peak = np.abs(e).max(axis=1)
            peak[peak == 0.0] = 1.0
            e /= peak[:, None]
            norms = np.sqrt(np.einsum("ij,ij->i", e, e))
            norms[norms == 0.0] = 1.0  # zero vectors stay zero: cosine 0 with every other item
            e /= norms[:, None]
            self._unit = e
        self._paths: list[tuple[str, ...]] | None = None
        self._codes_by_level: dict[int, np.ndarray] = {}
        # (b_l, codes at level l) for the levels that carry weight.
        self._levels: list[tuple[float, np.ndarray]] = []
        if categories is not None:
            paths = [category_path(c) for c in categories]
            if any(paths):
                if len(paths) != n:
                    raise ValueError(f"expected {n} categories, got {len(paths)}")
                self._paths = paths
                self._levels = [
                    (float(b), self._codes_of(paths, level))
                    for level, b in enumerate(beta, start=1)
                    if b > 0.0
                ]
        if self._unit is None:
            self.category_weight = 1.0
        elif self._paths is None:
            self.category_weight = 0.0
        else:
            self.category_weight = float(category_weight)

    @property
    def codes(self) -> np.ndarray | None:
        """Top-level category code per item, or None when no categories were given."""
        return self.codes_at(1)

    def codes_at(self, level: int) -> np.ndarray | None:
        """Category code per item at ``level`` (1 is the top level; shared.selection's
        category_codes), or None when no categories were given."""
        return None if self._paths is None else self._codes_of(self._paths, level)

    def _codes_of(self, paths: list[tuple[str, ...]], level: int) -> np.ndarray:
        if level not in self._codes_by_level:
            self._codes_by_level[level] = category_codes(paths, level)
        return self._codes_by_level[level]

    def _category_row(self, j: int) -> np.ndarray:
        out = np.zeros(self.n)
        for b, codes in self._levels:
            out += b * (codes == codes[j])
        return out

    def row(self, j: int) -> np.ndarray:
        """S[j, :] as float64, with S[j, j] exactly 1."""
        w = self.category_weight
        if self._unit is not None:
            out = self._unit @ self._unit[j]
            if w > 0.0 and self._paths is not None:
                out *= 1.0 - w
                out += w * self._category_row(j)
        elif self._paths is not None:
            out = self._category_row(j)
        else:
            out = np.zeros(self.n)
        out[j] = 1.0
        return out

    def matrix(self) -> np.ndarray:
        """The full N x N matrix; for references and tests, O(N^2 (d + D))."""
        if self.n == 0:
            return np.zeros((0, 0))
        return np.stack([self.row(j) for j in range(self.n)])
