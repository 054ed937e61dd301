"""Ranking and beyond-accuracy metrics, defined once for every evaluation in the project.

Protocol everywhere: full ranking over the catalog, temporal split. ``ranked`` is a list of
item ids best first; ``relevant`` is the set of held-out items of one user. Per-user values
are averaged over users that have at least one relevant item.

- Precision@k = |top-k ∩ relevant| / k
- Recall@k    = |top-k ∩ relevant| / |relevant|
- NDCG@k      = DCG@k / IDCG@k with binary gains, DCG = sum 1/log2(rank + 1)
- HitRate@k   = 1 if top-k ∩ relevant is non-empty
- MRR         = 1 / rank of the first relevant item (0 if none in the list)
- item coverage      = distinct items recommended to anyone / catalog size
- ILD@k              = mean pairwise (1 - cosine) over the item embeddings of a top-k list
- category coverage  = distinct categories in top-k / min(k, categories available)
- novelty@k          = mean of -log2 p(item) over top-k, p = share of users who interacted
- near-duplicates@k  = pairs of top-k items in the same leaf category (same full path)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from shared.selection import category_path


def precision_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(set(ranked[:k]) & relevant) / k


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def hit_rate_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return 1.0 if set(ranked[:k]) & relevant else 0.0


def mrr(ranked: Sequence[str], relevant: set[str], k: int | None = None) -> float:
    for i, item in enumerate(ranked[:k] if k else ranked):
        if item in relevant:
            return 1.0 / (i + 1)
    return 0.0


def item_coverage(lists: Iterable[Sequence[str]], catalog_size: int) -> float:
    seen: set[str] = set()
    for ranked in lists:
        seen.update(ranked)
    return len(seen) / catalog_size if catalog_size else 0.0


def intra_list_diversity(ranked: Sequence[str], embeddings: Mapping[str, np.ndarray]) -> float:
    """Mean pairwise cosine distance; items without an embedding are ignored."""
    vecs = [embeddings[i] for i in ranked if i in embeddings]
    if len(vecs) < 2:
        return 0.0
    m = np.asarray(vecs, dtype=np.float64)
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    sim = m @ m.T
    n = len(vecs)
    return float((n * (n - 1) - (sim.sum() - np.trace(sim))) / (n * (n - 1)))


def category_coverage(
    ranked: Sequence[str], category_of: Mapping[str, str], k: int, available: int | None = None
) -> float:
    """Distinct categories in the top k over min(k, categories available)."""
    cats = {category_of[i] for i in ranked[:k] if i in category_of}
    denom = min(k, available) if available else k
    return len(cats) / denom if denom else 0.0


def near_duplicates(
    ranked: Sequence[str], category_of: Mapping[str, str | Sequence[str]], k: int | None = None
) -> int:
    """Pairs of items in the top k (the whole list when k is None) that share a leaf.

    ``category_of`` maps an item to its category path (or a label, a one-level path); the leaf
    is the whole path, so ("home", "mug") and ("gifts", "mug") are different leaves. Items
    without a category, or missing from the map, pair with nothing. A list with c items in one
    leaf counts c (c - 1) / 2 pairs there.
    """
    counts: dict[tuple[str, ...], int] = {}
    for item in ranked[:k] if k is not None else ranked:
        path = category_path(category_of.get(item, ()))
        if path:
            counts[path] = counts.get(path, 0) + 1
    return sum(c * (c - 1) // 2 for c in counts.values())


def novelty(ranked: Sequence[str], popularity: Mapping[str, float], k: int) -> float:
    """Mean self-information; ``popularity`` maps item -> share of users in (0, 1]."""
    vals = [-math.log2(popularity[i]) for i in ranked[:k] if popularity.get(i, 0.0) > 0]
    return float(np.mean(vals)) if vals else 0.0


ACCURACY: dict[str, Callable[[Sequence[str], set[str], int], float]] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "hit_rate": hit_rate_at_k,
    "mrr": mrr,
}


def evaluate_lists(
    lists: Mapping[str, Sequence[str]],
    truth: Mapping[str, set[str]],
    ks: Sequence[int] = (10, 50),
) -> dict[str, float]:
    """Mean of every accuracy metric at every k over users with non-empty truth.

    Keys are like ``ndcg@10``. Users in ``truth`` without a list count as empty lists.
    """
    users = [u for u, rel in truth.items() if rel]
    if not users:
        raise ValueError("no user has a held-out item")
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in ACCURACY.items():
            out[f"{name}@{k}"] = float(np.mean([fn(lists.get(u, []), truth[u], k) for u in users]))
    out["users"] = float(len(users))
    return out
