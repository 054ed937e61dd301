"""One entry point over the methods: order by relevance, build the kernel, dispatch.

Candidates are put in relevance order (stable) before any method runs, so wherever a method
sees a tie, the more relevant item (then the earlier one) wins; positions are mapped back to
the caller's order at the end.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.reranker.config import DEFAULT_LEVEL_WEIGHTS
from services.reranker.dpp import DEFAULT_EPS, dpp_greedy
from services.reranker.kernel import SimilarityKernel
from services.reranker.mmr import mmr
from services.reranker.selection import Selection, relevance_order, top_by_relevance
from shared.selection import Category


class Method(enum.Enum):
    """Diversification algorithm."""

    NONE = "none"
    MMR = "mmr"
    DPP = "dpp"


@dataclass(frozen=True)
class RerankParams:
    """What one request asks for; validated by the caller (the servicer)."""

    k: int
    method: Method
    tradeoff: float
    max_per_category: int = 0
    window: int = 0
    category_weight: float = 0.3
    eps: float = DEFAULT_EPS
    # The category level max_per_category applies at (1 is the top level), and the weights of
    # the hierarchical category similarity (kernel.SimilarityKernel).
    cap_level: int = 1
    level_weights: tuple[float, ...] = DEFAULT_LEVEL_WEIGHTS


def rerank(
    relevance: np.ndarray,
    embeddings: np.ndarray | None,
    categories: Sequence[Category] | None,
    params: RerankParams,
) -> Selection:
    """Choose and order min(k, N) of N candidates; indices refer to the caller's order.

    ``categories`` holds a top-level label or a category path per candidate."""
    r = np.asarray(relevance, dtype=np.float64)
    order = relevance_order(r)
    emb = None if embeddings is None else np.asarray(embeddings)[order]
    cats = None if categories is None else [categories[i] for i in order]
    kernel = SimilarityKernel(
        r.size, emb, cats, params.category_weight, level_weights=params.level_weights
    )
    rs = r[order]
    if params.method is Method.NONE:
        codes = kernel.codes_at(params.cap_level)
        chosen = top_by_relevance(rs, params.k, codes, params.max_per_category)
    elif params.method is Method.MMR:
        chosen = mmr(
            rs,
            kernel,
            params.k,
            params.tradeoff,
            max_per_category=params.max_per_category,
            cap_level=params.cap_level,
        )
    else:
        chosen = dpp_greedy(
            rs,
            kernel,
            params.k,
            params.tradeoff,
            window=params.window,
            max_per_category=params.max_per_category,
            cap_level=params.cap_level,
            eps=params.eps,
        )
    return Selection(order[chosen.indices], chosen.scores, chosen.diversified)
