"""Maximal Marginal Relevance, vectorised over the candidates.

Carbonell and Goldstein, "The Use of MMR, Diversity-Based Reranking for Reordering Documents
and Producing Summaries", SIGIR 1998. Each step picks

    argmax_i  lambda * r_i - (1 - lambda) * max_{j chosen} S[i, j]

with lambda = 1 - tradeoff, r the relevance min-max scaled to [0, 1] within the request (so
relevance and similarity, both at most 1, are on comparable scales whatever the ranker's
logits are), and S the PSD similarity of kernel.SimilarityKernel. The max over an empty set is
taken as 0, so the first pick is the most relevant item. Keeping the running max per candidate
makes a step one kernel row and two vector operations: O(N d) per pick. Ties go to the lower
position; rerank.rerank passes candidates in relevance order, so there relevance breaks ties.

Trade-off 0 (lambda = 1) returns the relevance order itself; trade-off 1 (lambda = 0) picks, after
the first item, the item least similar to everything chosen so far, relevance deciding only
ties. The selection score is the MMR score at the moment of the pick.
"""

from __future__ import annotations

import numpy as np

from services.reranker.kernel import SimilarityKernel, normalise_relevance
from services.reranker.selection import CategoryCap, Selection, top_by_relevance


def mmr(
    relevance: np.ndarray,
    kernel: SimilarityKernel,
    k: int,
    tradeoff: float,
    *,
    max_per_category: int = 0,
    cap_level: int = 1,
) -> Selection:
    """MMR selection of min(k, N) items (fewer only when the category cap leaves none);
    ``max_per_category`` caps the items per category at ``cap_level`` (1 is the top level)."""
    r = np.asarray(relevance, dtype=np.float64)
    if r.ndim != 1 or r.size != kernel.n:
        raise ValueError("relevance must be a vector with one score per kernel item")
    if k < 1:
        raise ValueError("k must be >= 1")
    if not 0.0 <= tradeoff <= 1.0:
        raise ValueError("tradeoff must be in [0, 1]")
    n = r.size
    k = min(k, n)
    codes = kernel.codes_at(cap_level)
    if tradeoff == 0.0:
        return top_by_relevance(r, k, codes, max_per_category)
    lam = 1.0 - tradeoff
    weighted = lam * normalise_relevance(r)
    max_sim = np.zeros(n)
    eligible = np.ones(n, dtype=bool)
    cap = CategoryCap(codes, max_per_category)
    chosen: list[int] = []
    scores: list[float] = []
    while len(chosen) < k:
        score = np.where(eligible, weighted - tradeoff * max_sim, -np.inf)
        j = int(np.argmax(score))
        if score[j] == -np.inf:
            break
        chosen.append(j)
        scores.append(float(score[j]))
        cap.take(j, eligible)
        row = kernel.row(j)
        if len(chosen) == 1:
            max_sim = row
        else:
            np.maximum(max_sim, row, out=max_sim)
    return Selection(np.asarray(chosen, dtype=np.int64), np.asarray(scores), len(chosen))
