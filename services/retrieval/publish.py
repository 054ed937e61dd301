"""Train on a dataset's temporal training split, measure on its test split, publish a version.

This is what scripts/train_retrieval.py runs and what a local stack launcher calls in code:

    from services.retrieval.publish import train_and_publish
    path = train_and_publish(synthetic.generate(), "var/models/retrieval")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from services.retrieval.evaluation import evaluate_retrieval
from services.retrieval.index import build_index
from services.retrieval.model import RetrievalArtefact, TrainConfig, save_artefact, train
from shared.data.types import Dataset, temporal_split


def train_and_evaluate(
    dataset: Dataset,
    config: TrainConfig | None = None,
    seed: int = 0,
    *,
    train_fraction: float = 0.8,
    ks: Sequence[int] = (50, 100, 200),
    title_vectors: np.ndarray | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RetrievalArtefact:
    """Train on the split's train side; put test-side metrics into ``meta["metrics"]``."""
    train_part, test_part = temporal_split(dataset, train_fraction)
    artefact = train(
        train_part,
        dataset.items,
        config,
        seed,
        dataset=dataset.name,
        title_vectors=title_vectors,
        on_epoch=on_epoch,
        now=now,
    )
    results = evaluate_retrieval(artefact, build_index(artefact, "flat"), train_part, test_part, ks)
    metrics: dict[str, Any] = {
        "protocol": (
            f"temporal split at the {train_fraction:.0%} time quantile; train history -> "
            "test items; full catalog; nothing excluded; exact (flat) index"
        ),
        **results,
    }
    artefact.meta["metrics"] = metrics
    artefact.meta["train_fraction"] = train_fraction
    return artefact


def train_and_publish(
    dataset: Dataset,
    root: Path | str = "var/models/retrieval",
    config: TrainConfig | None = None,
    seed: int = 0,
    *,
    version: str | None = None,
    set_latest: bool = True,
    train_fraction: float = 0.8,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Path:
    """Train, evaluate and save a new version (and point LATEST at it); returns its folder."""
    artefact = train_and_evaluate(
        dataset, config, seed, train_fraction=train_fraction, on_epoch=on_epoch
    )
    return save_artefact(artefact, root, version, set_latest=set_latest)
