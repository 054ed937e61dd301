"""Implicit-feedback ALS item factors for the retrieval service's collaborative-filtering source.

Trains ``implicit``'s alternating least squares (Hu, Koren & Volinsky, "Collaborative
Filtering for Implicit Feedback Datasets", ICDM 2008) on the same training interactions as
the two-tower model. The confidence of a (user, item) pair is ``c = 1 + alpha * r`` with r
the pair's interaction count, passed to implicit as the matrix values (implicit's own alpha
left at 1), so the service's numpy fold-in (``shared.artefacts.retrieval.CollaborativeFactors``)
solves the same equation as implicit's ``recalculate_user``.

Regularization and alpha are chosen on a validation cut INSIDE the training period (its last
``1 - validation_fraction`` of time): fit on the part before the cut, fold each validation
user in from that part's history exactly as the service does, score Recall@k of the
validation items; then refit on the whole training period with the chosen pair. The grid,
every cell's score and the choice go into the artefact's meta.json (``cf``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from offline.retrieval.training import recent_histories
from shared import metrics
from shared.artefacts.retrieval import CollaborativeFactors
from shared.data.types import Interaction, split_log


@dataclass(frozen=True)
class CfConfig:
    """The ALS model and the validation grid its two confidence hyper-parameters come from."""

    factors: int = 64
    iterations: int = 15
    regularization_grid: tuple[float, ...] = (0.1, 1.0, 10.0)
    alpha_grid: tuple[float, ...] = (0.25, 1.0, 5.0, 20.0)
    validation_fraction: float = 0.8
    # Validation metric: Recall@k of the fold-in user factor, k = a typical candidate count.
    k: int = 100
    max_history: int = 50

    def __post_init__(self) -> None:
        if self.factors < 1 or self.iterations < 1 or self.k < 1 or self.max_history < 1:
            raise ValueError("factors, iterations, k and max_history must be >= 1")
        if not self.regularization_grid or not self.alpha_grid:
            raise ValueError("the regularization and alpha grids must not be empty")
        if min(self.regularization_grid) <= 0 or min(self.alpha_grid) < 0:
            raise ValueError("regularization must be > 0 and alpha >= 0")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in (0, 1)")


DEFAULT_CF_CONFIG = CfConfig()


def confidence_matrix(
    interactions: Sequence[Interaction], row: Mapping[str, int], alpha: float
) -> Any:
    """(users x items) CSR of ``1 + alpha * count`` for every interacted pair (users sorted)."""
    from scipy.sparse import csr_matrix

    users = {u: k for k, u in enumerate(sorted({x.user_id for x in interactions}))}
    counts: dict[tuple[int, int], int] = {}
    for x in interactions:
        r = row.get(x.item_id)
        if r is not None:
            key = (users[x.user_id], r)
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        raise ValueError("no interaction with a catalog item; nothing to factorise")
    keys = np.array(list(counts), dtype=np.int64)
    values = 1.0 + alpha * np.array(list(counts.values()), dtype=np.float64)
    return csr_matrix(
        (values.astype(np.float32), (keys[:, 0], keys[:, 1])), shape=(len(users), len(row))
    )


def fit_als(
    interactions: Sequence[Interaction],
    item_ids: Sequence[str],
    regularization: float,
    alpha: float,
    config: CfConfig,
    seed: int = 0,
) -> np.ndarray:
    """Item factors (len(item_ids), factors) float32 from implicit's CPU ALS, one thread.
    Items without interactions keep implicit's small random start and rarely surface."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    row = {item: i for i, item in enumerate(item_ids)}
    # implicit parallelises itself; a threaded BLAS underneath only oversubscribes the CPU.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=config.factors,
            regularization=regularization,
            alpha=1.0,  # the confidences already hold 1 + alpha * r
            iterations=config.iterations,
            random_state=seed,
            num_threads=1,
        )
        model.fit(confidence_matrix(interactions, row, alpha), show_progress=False)
    return np.ascontiguousarray(model.item_factors, dtype=np.float32)


def fold_in_recall(
    cf: CollaborativeFactors,
    item_ids: Sequence[str],
    history_part: Sequence[Interaction],
    truth_part: Sequence[Interaction],
    k: int,
) -> tuple[float, int]:
    """Mean Recall@k over users with history and truth, each folded in from their history
    (most recent first) as the service does; full catalog, nothing excluded."""
    row = {item: i for i, item in enumerate(item_ids)}
    histories = recent_histories(history_part)
    truth: dict[str, set[str]] = {}
    for x in truth_part:
        if x.user_id in histories:
            truth.setdefault(x.user_id, set()).add(x.item_id)
    lists: dict[str, list[str]] = {}
    for user in truth:
        rows = [row[i] for i in histories[user] if i in row]
        if not rows:
            continue
        scores = cf.item_factors @ cf.history_factor(rows)
        top = np.argsort(-scores, kind="stable")[:k]
        lists[user] = [item_ids[i] for i in top]
    truth = {u: t for u, t in truth.items() if u in lists}
    if not truth:
        return 0.0, 0
    result = metrics.evaluate_lists(lists, truth, [k])
    return float(result[f"recall@{k}"]), len(lists)


def train_cf(
    interactions: Sequence[Interaction],
    item_ids: Sequence[str],
    config: CfConfig | None = None,
    seed: int = 0,
) -> tuple[CollaborativeFactors, dict[str, Any]]:
    """Choose (regularization, alpha) on the validation cut, refit on all ``interactions``;
    returns the factors and the record for meta.json."""
    config = config or CfConfig()
    start = time.perf_counter()
    before, after = split_log(interactions, config.validation_fraction)
    grid: list[dict[str, float]] = []
    best: tuple[float, float, float] | None = None
    users = 0
    for reg in config.regularization_grid:
        for alpha in config.alpha_grid:
            factors = fit_als(before, item_ids, reg, alpha, config, seed)
            cf = CollaborativeFactors(factors, reg, alpha, config.max_history)
            recall, users = fold_in_recall(cf, item_ids, before, after, config.k)
            grid.append({"regularization": reg, "alpha": alpha, f"recall@{config.k}": recall})
            if best is None or recall > best[0]:
                best = (recall, reg, alpha)
    assert best is not None
    _, reg, alpha = best
    if users == 0:
        # Nobody has history before the validation cut and items after it (a tiny log): no
        # evidence to choose on, so the first cell, and the record says so.
        reg, alpha = config.regularization_grid[0], config.alpha_grid[0]
    factors = fit_als(interactions, item_ids, reg, alpha, config, seed)
    record: dict[str, Any] = {
        "model": "implicit ALS (CPU, Cholesky fold-in at serving)",
        "confidence": "c = 1 + alpha * interaction count",
        "config": asdict(config),
        "chosen": {"regularization": reg, "alpha": alpha},
        "validation": {
            "protocol": (
                f"training period cut at its {config.validation_fraction:.0%} time quantile; "
                f"fit before, fold-in from the history before, Recall@{config.k} of the items "
                "after, full catalog, nothing excluded"
            ),
            "users": users,
            "grid": grid if users else "no validation user: first grid cell taken",
        },
        "seconds": round(time.perf_counter() - start, 1),
    }
    return CollaborativeFactors(factors, reg, alpha, config.max_history), record
