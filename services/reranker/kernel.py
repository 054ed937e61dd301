"""Item similarity kernel S shared by DPP and MMR, and per-request relevance normalisation.

S blends two positive semi-definite (PSD) matrices with unit diagonals:

    S = (1 - w) * C + w * G

C is the cosine similarity of the item embeddings (the Gram matrix of the L2-normalised
vectors; an all-zero vector is similar only to itself, i.e. it gets its own orthogonal
direction), and G[i, j] = 1 when items i and j share a non-empty category (the Gram matrix of
one-hot category indicators; an item without a category is its own category). A convex
combination of PSD matrices with unit diagonals is PSD with a unit diagonal, so every principal
minor is a valid DPP volume and the Cholesky residuals of the greedy algorithms lie in [0, 1].

w is ``category_weight`` when both embeddings and categories are given, 0 without categories
and 1 without embeddings (without either, S is the identity and only relevance matters).

Rows are computed on demand, because the greedy algorithms read only the k rows of the items
they pick: O(k N d) work instead of O(N^2 d) for the full matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.selection import category_codes


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
    """The PSD similarity S over N candidates, read one row at a time."""

    def __init__(
        self,
        n: int,
        embeddings: np.ndarray | None = None,
        categories: Sequence[str] | None = None,
        category_weight: float = 0.3,
    ) -> None:
        if not 0.0 <= category_weight <= 1.0:
            raise ValueError("category_weight must be in [0, 1]")
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
        self._codes: np.ndarray | None = None
        if categories is not None and any(categories):
            if len(categories) != n:
                raise ValueError(f"expected {n} categories, got {len(categories)}")
            self._codes = category_codes(categories)
        if self._unit is None:
            self.category_weight = 1.0
        elif self._codes is None:
            self.category_weight = 0.0
        else:
            self.category_weight = float(category_weight)

    @property
    def codes(self) -> np.ndarray | None:
        """Category code per item, or None when no categories were given."""
        return self._codes

    def row(self, j: int) -> np.ndarray:
        """S[j, :] as float64, with S[j, j] exactly 1."""
        w = self.category_weight
        if self._unit is not None:
            out = self._unit @ self._unit[j]
            if w > 0.0 and self._codes is not None:
                out *= 1.0 - w
                out += w * (self._codes == self._codes[j])
        elif self._codes is not None:
            out = (self._codes == self._codes[j]).astype(np.float64)
        else:
            out = np.zeros(self.n)
        out[j] = 1.0
        return out

    def matrix(self) -> np.ndarray:
        """The full N x N matrix; for references and tests, O(N^2 d)."""
        if self.n == 0:
            return np.zeros((0, 0))
        return np.stack([self.row(j) for j in range(self.n)])
