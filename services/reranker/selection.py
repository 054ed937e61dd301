"""The result type of every reranking method, and the relevance order under the category cap.

The cap and the capped top k live in shared.selection, which the orchestrator's fallback uses
too; here they are put in the reranker's result type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.selection import CategoryCap, capped_top_k, fill_by_relevance, relevance_order

__all__ = ["CategoryCap", "Selection", "fill_by_relevance", "relevance_order", "top_by_relevance"]


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


def top_by_relevance(
    relevance: np.ndarray, k: int, codes: np.ndarray | None = None, max_per_category: int = 0
) -> Selection:
    """The k most relevant items (stable on ties) under the optional category cap.

    Selection scores are the relevance values as given.
    """
    r = np.asarray(relevance, dtype=np.float64)
    idx = capped_top_k(r, k, codes, max_per_category)
    return Selection(idx, r[idx], 0)
