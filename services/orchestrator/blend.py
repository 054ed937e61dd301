"""Blending the ranker's score with the score the candidate arrived with.

The cross-encoder's logits and the retrieval inner products (or DP popularity counts) live on
unrelated scales, so each is standardised over the request's candidates before the weighted
sum: ``weight * z(ranker) + (1 - weight) * z(prior)``. ``weight = 1`` is the ranker alone
(the candidates' own scores are ignored), ``weight = 0`` keeps the prior order. Pure numpy:
the orchestrator and scripts/evaluate.py call the same function; ``standardise`` is the
learned ranking model's (shared.ranking_features), so both see the same z-scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.ranking_features import standardise

__all__ = ["blend", "standardise"]


def blend(
    ranker: Sequence[float] | np.ndarray, prior: Sequence[float] | np.ndarray, weight: float
) -> np.ndarray:
    """The blended relevance of each candidate; ``weight`` in [0, 1] is the ranker's share."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError("weight must be in [0, 1]")
    r = np.asarray(ranker, dtype=np.float64)
    p = np.asarray(prior, dtype=np.float64)
    if r.shape != p.shape:
        raise ValueError("ranker and prior scores must have one value per candidate")
    if weight == 1.0:
        return r.copy()
    return weight * standardise(r) + (1.0 - weight) * standardise(p)
