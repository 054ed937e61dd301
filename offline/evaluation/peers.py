"""Reference recommenders ("peers") that every evaluation table compares the product against.

Each peer fits on an :class:`InteractionMatrix` (shoppers x items, interaction counts) and
recommends the top n items per shopper, with the shopper's own past items allowed or excluded:

- ``popularity``  items by training interaction count (ties by item order); the same order as
                  the retrieval artefact's popularity fallback (``popular_items``).
- ``repeat``      the shopper's own past items by count, then by recency, then popularity
                  (history allowed only: excluded, it is popularity).
- ``als``         implicit-feedback matrix factorization (Hu, Koren & Volinsky, ICDM 2008):
                  ``implicit.als.AlternatingLeastSquares`` on the counts as confidences.
- ``bpr``         Bayesian personalized ranking (Rendle et al., UAI 2009):
                  ``implicit.bpr.BayesianPersonalizedRanking``.
- ``item-knn``    item-item nearest neighbours on cosine or BM25-weighted co-occurrence:
                  ``implicit.nearest_neighbours.CosineRecommender`` / ``BM25Recommender``.

These are the libraries' own models (CPU builds), not re-implementations. A model that returns
fewer than n items (kNN has no neighbours for some shoppers) is completed with popularity, so
every list has n items. Hyperparameters are chosen on a validation cut (:func:`tune`, and
``offline.evaluation.protocol``), never on test data.

Reuse outside the evaluation (e.g. ALS item factors as another candidate source)::

    matrix = InteractionMatrix.build(train_interactions)
    peer = make_peer("als", {"factors": 64}, seed=0)
    peer.fit(matrix)
    lists = peer.recommend(["u1", "u2"], 100, exclude_history=False)
    factors = peer.model.item_factors  # rows in matrix.items order
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from shared import metrics
from shared.data.types import Interaction

FAMILIES = ("popularity", "repeat", "als", "bpr", "item-knn")
"""Every peer family, in the order the tables list them."""

TUNED = ("als", "bpr", "item-knn")
"""The families with hyperparameters, chosen on the validation cut over :data:`GRIDS`."""

GRIDS: dict[str, list[dict[str, Any]]] = {
    "als": [
        {"factors": f, "regularization": r, "alpha": a, "iterations": 15}
        for f in (32, 64, 128)
        for r in (0.01, 0.1)
        for a in (1.0, 10.0)
    ],
    "bpr": [
        {"factors": f, "learning_rate": lr, "regularization": 0.01, "iterations": 100}
        for f in (32, 64, 128)
        for lr in (0.01, 0.05)
    ],
    "item-knn": [{"similarity": s, "K": k} for s in ("cosine", "bm25") for k in (10, 50, 200)],
}
"""A small grid per tuned family (12 + 6 + 6 fits on the validation cut)."""

SMOKE_GRIDS: dict[str, list[dict[str, Any]]] = {
    "als": [{"factors": 8, "regularization": 0.01, "alpha": 1.0, "iterations": 5}],
    "bpr": [{"factors": 8, "learning_rate": 0.05, "regularization": 0.01, "iterations": 20}],
    "item-knn": [{"similarity": "cosine", "K": 10}, {"similarity": "bm25", "K": 10}],
}
"""One or two points per family, for smoke runs and tests (``--peer-grid smoke``)."""


@dataclass(frozen=True)
class InteractionMatrix:
    """Shoppers x items interaction counts, and the log position of each pair's last event.

    ``counts[u, i]`` is how many interactions shopper ``users[u]`` had with ``items[i]``;
    ``last[u, i]`` is 1 + the index (in time order) of the last of them, for recency.
    """

    users: tuple[str, ...]
    items: tuple[str, ...]
    counts: csr_matrix
    last: csr_matrix
    user_row: dict[str, int] = field(repr=False)
    item_col: dict[str, int] = field(repr=False)

    @classmethod
    def build(
        cls, interactions: Sequence[Interaction], items: Sequence[str] | None = None
    ) -> InteractionMatrix:
        """From a log in time order; ``items`` (default: the items in the log, sorted) fixes
        the columns, and interactions with other items are left out."""
        cols = list(items) if items is not None else sorted({x.item_id for x in interactions})
        item_col = {item: c for c, item in enumerate(cols)}
        users = sorted({x.user_id for x in interactions if x.item_id in item_col})
        user_row = {user: r for r, user in enumerate(users)}
        counts: dict[tuple[int, int], int] = {}
        last: dict[tuple[int, int], int] = {}
        for pos, x in enumerate(interactions):
            c = item_col.get(x.item_id)
            if c is None:
                continue
            key = (user_row[x.user_id], c)
            counts[key] = counts.get(key, 0) + 1
            last[key] = pos + 1
        shape = (len(users), len(cols))
        keys = list(counts)
        rows = np.fromiter((k[0] for k in keys), dtype=np.int32, count=len(keys))
        cs = np.fromiter((k[1] for k in keys), dtype=np.int32, count=len(keys))
        count_m = csr_matrix(
            (np.fromiter(counts.values(), dtype=np.float32, count=len(keys)), (rows, cs)), shape
        )
        last_m = csr_matrix(
            (np.asarray([last[k] for k in keys], dtype=np.float64), (rows, cs)), shape
        )
        count_m.sort_indices()
        last_m.sort_indices()
        return cls(tuple(users), tuple(cols), count_m, last_m, user_row, item_col)

    def rows(self, users: Sequence[str]) -> np.ndarray:
        """Matrix rows of ``users``; a shopper without interactions is an error."""
        missing = [u for u in users if u not in self.user_row]
        if missing:
            raise ValueError(f"{len(missing)} shoppers have no interactions in the matrix")
        return np.asarray([self.user_row[u] for u in users], dtype=np.int64)

    def popularity(self) -> np.ndarray:
        """Interactions per item (column sums of ``counts``)."""
        return np.asarray(self.counts.sum(axis=0)).ravel()


class Peer:
    """A fitted-or-not reference recommender; subclasses implement ``_fit`` and ``_ranked``."""

    family: str = ""

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: dict[str, Any] = dict(params or {})
        self._data: InteractionMatrix | None = None
        self._popular = np.zeros(0, dtype=np.int64)

    @property
    def data(self) -> InteractionMatrix:
        if self._data is None:
            raise RuntimeError(f"peer {self.family!r} is not fitted")
        return self._data

    def fit(self, data: InteractionMatrix) -> Peer:
        """Fit on ``data``; returns self."""
        if data.counts.nnz == 0:
            raise ValueError("cannot fit a peer on an empty interaction matrix")
        self._data = data
        self._popular = np.argsort(-data.popularity(), kind="stable")
        self._fit(data)
        return self

    def recommend(
        self, users: Sequence[str], n: int, *, exclude_history: bool
    ) -> dict[str, list[str]]:
        """The top ``n`` items per shopper, best first, completed with popularity."""
        if n < 1:
            raise ValueError("n must be >= 1")
        data = self.data
        rows = data.rows(users)
        ranked = self._ranked(rows, min(n, len(data.items)), exclude_history)
        out: dict[str, list[str]] = {}
        for user, row, cols in zip(users, rows, ranked, strict=True):
            out[user] = [data.items[c] for c in self._complete(row, cols, n, exclude_history)]
        return out

    def _complete(self, row: int, cols: Sequence[int], n: int, exclude_history: bool) -> list[int]:
        data = self.data
        history = set(data.counts.indices[data.counts.indptr[row] : data.counts.indptr[row + 1]])
        chosen: list[int] = []
        seen: set[int] = set()
        for c in (*cols, *self._popular):
            c = int(c)
            if c in seen or (exclude_history and c in history):
                continue
            seen.add(c)
            chosen.append(c)
            if len(chosen) == n:
                break
        return chosen

    def _fit(self, data: InteractionMatrix) -> None:
        raise NotImplementedError

    def _ranked(self, rows: np.ndarray, n: int, exclude_history: bool) -> list[Sequence[int]]:
        raise NotImplementedError


class Popularity(Peer):
    """Items by training interaction count; nothing personal."""

    family = "popularity"

    def _fit(self, data: InteractionMatrix) -> None:
        pass

    def _ranked(self, rows: np.ndarray, n: int, exclude_history: bool) -> list[Sequence[int]]:
        return [[] for _ in rows]  # _complete fills with popularity


class RepeatPurchase(Peer):
    """The shopper's own past items, most bought first (ties: most recent first), then
    popularity."""

    family = "repeat"

    def _fit(self, data: InteractionMatrix) -> None:
        pass

    def _ranked(self, rows: np.ndarray, n: int, exclude_history: bool) -> list[Sequence[int]]:
        if exclude_history:
            raise ValueError("the repeat baseline with history excluded is popularity")
        counts, last = self.data.counts, self.data.last
        out: list[Sequence[int]] = []
        for r in rows:
            lo, hi = counts.indptr[r], counts.indptr[r + 1]
            cols = counts.indices[lo:hi]
            order = np.lexsort((-last.data[lo:hi], -counts.data[lo:hi]))
            out.append(cols[order].tolist())
        return out


class ImplicitPeer(Peer):
    """A model of the ``implicit`` library (CPU): ALS, BPR, or item-kNN (cosine / BM25)."""

    def __init__(
        self,
        family: str,
        params: Mapping[str, Any] | None = None,
        *,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        super().__init__(params)
        if family not in TUNED:
            raise ValueError(f"unknown implicit family {family!r}; one of {TUNED}")
        self.family = family
        self.seed = seed
        self.threads = threads
        self.model: Any = None

    def _new_model(self) -> Any:
        p = dict(self.params)
        if self.family == "als":
            from implicit.als import AlternatingLeastSquares

            return AlternatingLeastSquares(
                **p, use_gpu=False, num_threads=self.threads, random_state=self.seed
            )
        if self.family == "bpr":
            from implicit.bpr import BayesianPersonalizedRanking

            return BayesianPersonalizedRanking(
                **p, use_gpu=False, num_threads=self.threads, random_state=self.seed
            )
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        similarity = p.pop("similarity", "cosine")
        if similarity == "cosine":
            return CosineRecommender(**p, num_threads=self.threads)
        if similarity == "bm25":
            return BM25Recommender(**p, num_threads=self.threads)
        raise ValueError(f"item-knn similarity must be cosine or bm25, not {similarity!r}")

    def _fit(self, data: InteractionMatrix) -> None:
        import implicit.als
        import implicit.bpr
        import implicit.nearest_neighbours  # noqa: F401  (BLAS libraries load before the limit)
        from threadpoolctl import threadpool_limits

        # implicit's own threads do the work; a multi-threaded BLAS underneath only contends.
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # BM25Recommender converts its own weighting to CSR and warns about it.
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.model = self._new_model()
            self.model.fit(data.counts, show_progress=False)

    def _ranked(self, rows: np.ndarray, n: int, exclude_history: bool) -> list[Sequence[int]]:
        user_items = self.data.counts[rows]
        ids, scores = self.model.recommend(
            rows, user_items, N=n, filter_already_liked_items=exclude_history
        )
        ids = np.atleast_2d(ids)
        scores = np.atleast_2d(scores)
        # Padding (ids < 0) and filtered items (non-finite scores) are not recommendations.
        keep = (ids >= 0) & np.isfinite(scores)
        return [ids[i][keep[i]].tolist() for i in range(len(rows))]


def make_peer(
    family: str, params: Mapping[str, Any] | None = None, *, seed: int = 0, threads: int = 1
) -> Peer:
    """A new, unfitted peer of ``family`` (one of :data:`FAMILIES`)."""
    if family == "popularity":
        return Popularity(params)
    if family == "repeat":
        return RepeatPurchase(params)
    return ImplicitPeer(family, params, seed=seed, threads=threads)


def modes(family: str) -> tuple[bool, ...]:
    """The ``exclude_history`` settings a family is evaluated with."""
    return (False,) if family == "repeat" else (False, True)


@dataclass(frozen=True)
class Tuned:
    """The best point of a grid on validation, its validation NDCG@10, and every point tried."""

    params: dict[str, Any]
    score: float
    tried: list[tuple[dict[str, Any], float]]


def tune(
    family: str,
    grid: Sequence[Mapping[str, Any]],
    fit_on: InteractionMatrix,
    truth: Mapping[str, set[str]],
    *,
    k: int = 10,
    seed: int = 0,
    threads: int = 1,
) -> dict[bool, Tuned]:
    """Fit every grid point on ``fit_on`` and score NDCG@k on ``truth`` (validation shoppers,
    all present in ``fit_on``), once per history mode; the best per mode (ties: the first)."""
    if not grid:
        raise ValueError(f"empty grid for {family!r}")
    users = sorted(u for u, rel in truth.items() if rel)
    if not users:
        raise ValueError("no validation shopper has a held-out item")
    tried: dict[bool, list[tuple[dict[str, Any], float]]] = {m: [] for m in modes(family)}
    for params in grid:
        peer = make_peer(family, params, seed=seed, threads=threads).fit(fit_on)
        for exclude in tried:
            lists = peer.recommend(users, k, exclude_history=exclude)
            score = float(np.mean([metrics.ndcg_at_k(lists[u], truth[u], k) for u in users]))
            tried[exclude].append((dict(params), score))
    out: dict[bool, Tuned] = {}
    for exclude, points in tried.items():
        best = max(range(len(points)), key=lambda i: (points[i][1], -i))
        out[exclude] = Tuned(points[best][0], points[best][1], points)
    return out


_LABELS = {
    "popularity": "popularity",
    "repeat": "repeat purchases, then popularity",
    "als": "ALS",
    "bpr": "BPR",
    "item-knn": "item-kNN",
}


def peer_name(family: str, exclude_history: bool) -> str:
    """The row name of a peer in the evaluation tables."""
    label = _LABELS[family]
    return f"{label}, history excluded" if exclude_history else label


def describe(params: Mapping[str, Any]) -> str:
    """``factors=64 regularization=0.01``: a grid point as the tables print it."""
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
