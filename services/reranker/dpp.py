"""Greedy MAP inference for a determinantal point process (DPP) with incremental Cholesky updates.

Chen, Zhang and Zhou, "Fast Greedy MAP Inference for Determinantal Point Process to Improve
Recommendation Diversity", NeurIPS 2018 (arXiv:1709.05135): Algorithm 1 (whole list) and
Algorithm 2 (sliding window).

Kernel. L = diag(q) S diag(q) with S the PSD item similarity (kernel.SimilarityKernel) and
q_i = exp(alpha * r_i), r the relevance min-max scaled to [0, 1] within the request. Then
log det L_Y = sum_{i in Y} 2 alpha r_i + log det S_Y, and the paper's Section 6 objective
theta * sum r_i + (1 - theta) * log det S_Y corresponds to alpha = theta / (2 (1 - theta)).
Our trade-off t is the weight of diversity, theta = 1 - t, so

    alpha = (1 - t) / (2 t)

- t = 0: pure relevance. alpha would be infinite, so the result is the relevance order itself
  (a stable sort), not an approximation of it.
- t = 1: alpha = 0, q = 1: the greedy maximises log det S_Y alone, the most diverse list the
  greedy finds; relevance only breaks ties (the first pick is the most relevant item, since
  every item then has the same gain) and orders the fill described below.

Numerics. For any set Y, d_i^2(L) = L_ii - L_iY L_YY^-1 L_Yi = q_i^2 s_i^2 with s_i^2 the same
Cholesky residual computed on S, because the diag(q) factors cancel. The algorithms therefore
run on S, whose residuals lie in [0, 1], and pick argmax 2 alpha r_i + log s_i^2 = log d_i^2:
the same choice as on L, without exp() overflowing for small t.

Early stop. An item whose residual s_i^2 is below ``eps`` lies (numerically) in the span of the
chosen items (e.g. a duplicate, or any item once d items of a d-dimensional embedding are
chosen); it adds no volume and dividing by its residual would be unsafe. Such items are not
picked by the DPP; when no eligible item is left above ``eps`` the DPP stops (the paper's
d_j^2 < epsilon criterion, applied to the similarity part) and the remaining slots are filled
in relevance order, so k items are returned whenever k <= N and the category cap allows it.

Selection score of a DPP pick: its log-det gain log d_j^2 = 2 alpha r_j + log s_j^2; filled
items carry the same expression with s_j^2 floored at 1e-300 (about -690.8), always finite.
"""

from __future__ import annotations

import math

import numpy as np

from services.reranker.config import DEFAULT_EPS
from services.reranker.kernel import SimilarityKernel, normalise_relevance
from services.reranker.selection import (
    CategoryCap,
    Selection,
    fill_by_relevance,
    top_by_relevance,
)

_LOG_FLOOR = 1e-300
_LINEAR_MAX_EXPONENT = 600.0
_MAX_ALPHA = 1e6


def _pick(
    weight: np.ndarray | None,
    log_q2: np.ndarray,
    s2: np.ndarray,
    eligible: np.ndarray,
    eps: float,
) -> int:
    """Position of the largest log-det gain among eligible items with residual >= eps, or -1."""
    if weight is not None:
        j = int(np.argmax(weight * s2))
        if eligible[j] and s2[j] >= eps:
            return j
    # Exact path: huge alpha, or the best product belongs to an item below eps.
    ok = eligible & (s2 >= eps)
    gain = np.where(ok, log_q2 + np.log(np.maximum(s2, _LOG_FLOOR)), -np.inf)
    j = int(np.argmax(gain))
    return j if ok[j] else -1


def alpha_for(tradeoff: float) -> float:
    """The relevance exponent alpha = (1 - t) / (2 t) for a trade-off t in (0, 1]."""
    if not 0.0 < tradeoff <= 1.0:
        raise ValueError("alpha is defined for a trade-off in (0, 1]")
    return (1.0 - tradeoff) / (2.0 * tradeoff)


def _check(relevance: np.ndarray, kernel: SimilarityKernel, k: int, tradeoff: float) -> None:
    if relevance.ndim != 1 or relevance.size != kernel.n:
        raise ValueError("relevance must be a vector with one score per kernel item")
    if k < 1:
        raise ValueError("k must be >= 1")
    if not 0.0 <= tradeoff <= 1.0:
        raise ValueError("tradeoff must be in [0, 1]")


def _remove_oldest(c: np.ndarray, m: int, s2: np.ndarray, window: list[int]) -> None:
    """Drop the oldest window item from the Cholesky factor (Algorithm 2, lines 8-15).

    Rows 0..m-1 of ``c`` hold the factor coordinates of every item, row l belonging to window
    item ``window[l]``; the window's own factor is V[a, b] = c[b, window[a]]. Removing row 0
    leaves V22 V22^T + v v^T, a rank-one update done with Givens rotations. Applying each
    rotation to all columns updates V and every candidate's coordinates at once, and the
    coordinate the rotations push out (``a``) returns its square to the residual.
    """
    a = c[0].copy()
    for pos in range(1, m):
        pivot, tail = c[pos, window[pos]], a[window[pos]]
        t = math.hypot(pivot, tail)
        cos, sin = pivot / t, tail / t
        row = c[pos].copy()
        c[pos - 1] = cos * row + sin * a
        a = cos * a - sin * row
    c[m - 1] = 0.0
    s2 += a * a
    np.minimum(s2, 1.0, out=s2)  # residuals of a unit-diagonal kernel never exceed 1
    window.pop(0)


def dpp_greedy(
    relevance: np.ndarray,
    kernel: SimilarityKernel,
    k: int,
    tradeoff: float,
    *,
    window: int = 0,
    max_per_category: int = 0,
    cap_level: int = 1,
    eps: float = DEFAULT_EPS,
) -> Selection:
    """Greedy DPP MAP selection of min(k, N) items; ``window`` >= 2 enables Algorithm 2.

    ``max_per_category`` caps the items per category at ``cap_level`` (1 is the top level).

    Diversity is then required only among ``window`` consecutive items of the list. Ties go to
    the lower position, so callers that pass candidates in relevance order get relevance as the
    tie-breaker.
    """
    r = np.asarray(relevance, dtype=np.float64)
    _check(r, kernel, k, tradeoff)
    if window == 1 or window < 0:
        raise ValueError("window must be 0 (none) or at least 2")
    n = r.size
    k = min(k, n)
    codes = kernel.codes_at(cap_level)
    if tradeoff == 0.0:
        return top_by_relevance(r, k, codes, max_per_category)
    # alpha grows without bound as t -> 0 (inf for a subnormal t); past _MAX_ALPHA any
    # relevance gap above 1e-5 outweighs the largest possible diversity gain (log 1/eps).
    log_q2 = 2.0 * min(alpha_for(tradeoff), _MAX_ALPHA) * normalise_relevance(r)
    top = float(log_q2.max())
    # While exp() cannot underflow, argmax of d^2 = q^2 s^2 needs one multiply per step
    # instead of a log; the weights are q^2 scaled so that the largest is 1.
    weight = np.exp(log_q2 - top) if top <= _LINEAR_MAX_EXPONENT else None
    rows = k if window == 0 or window > k else window  # factor rows ever held at once
    c = np.zeros((rows, n))
    s2 = np.ones(n)
    eligible = np.ones(n, dtype=bool)
    cap = CategoryCap(codes, max_per_category)
    chosen: list[int] = []
    scores: list[float] = []
    held: list[int] = []  # items whose row is in c, oldest first (the window)
    while len(chosen) < k:
        j = _pick(weight, log_q2, s2, eligible, eps)
        if j < 0:
            break
        chosen.append(j)
        scores.append(float(log_q2[j] + math.log(s2[j])))
        if cap.take(j, eligible) and weight is not None:
            weight[~eligible] = 0.0
        elif weight is not None:
            weight[j] = 0.0
        if len(chosen) == k:
            break
        m = len(held)
        e = kernel.row(j)
        if m:
            e -= c[:m, j] @ c[:m]
        e /= math.sqrt(s2[j])
        c[m] = e
        s2 -= e * e
        held.append(j)
        if window and len(held) >= window:
            _remove_oldest(c, len(held), s2, held)
    diversified = len(chosen)
    fill_by_relevance(r, k, chosen, eligible, cap)
    idx = np.asarray(chosen, dtype=np.int64)
    all_scores = np.empty(idx.size)
    all_scores[:diversified] = scores
    tail = idx[diversified:]
    all_scores[diversified:] = log_q2[tail] + np.log(np.maximum(s2[tail], _LOG_FLOOR))
    return Selection(idx, all_scores, diversified)


def greedy_logdet_reference(kernel_matrix: np.ndarray, k: int, *, window: int = 0) -> list[int]:
    """Naive greedy MAP: each step recomputes log det L_{W + i} for every candidate i.

    W is every chosen item, or the last ``window - 1`` of them. O(N k^4) per list; the
    reference for the correctness tests and the baseline of the benchmark, not for serving.
    Ties go to the lower position, as in dpp_greedy.
    """
    n = kernel_matrix.shape[0]
    eligible = np.ones(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < min(k, n):
        base = chosen[len(chosen) - window + 1 :] if window and len(chosen) >= window else chosen
        cand = np.flatnonzero(eligible)
        sets = np.concatenate(
            [
                np.broadcast_to(np.asarray(base, dtype=np.int64), (cand.size, len(base))),
                cand[:, None],
            ],
            axis=1,
        )
        sign, logdet = np.linalg.slogdet(kernel_matrix[sets[:, :, None], sets[:, None, :]])
        j = int(cand[int(np.argmax(np.where(sign > 0, logdet, -np.inf)))])
        chosen.append(j)
        eligible[j] = False
    return chosen
