"""The publish gate: a retrained retrieval version replaces the served one only when it is not
measurably worse on the same shoppers.

The retrieval service serves (and with ``RELOAD_INTERVAL_S`` hot-swaps to) whatever
``LATEST`` names, so a retrain that came out worse (a bad seed, a broken log, a wrong
hyperparameter) would reach shoppers unseen. Before ``LATEST`` moves, ``champion_gate``
scores the version it names (the champion) and the new one (the challenger) on the new
version's own test split: the same shoppers, histories, truth and catalog, each through the
served candidate list (every source merged at the service's default weights,
``offline.retrieval.evaluation.source_runs``). It refuses when the challenger's per-shopper
Recall@``k`` minus the champion's has a paired bootstrap 95% interval entirely below 0.

A tie passes: two seeds of one recipe differ by a few percent (docs/evaluation.md), and a
retrain on a newer log is the point of retraining. The gate only stops a version the shoppers
of this split show to be worse.

The champion can only be scored on a test period it was not trained on. It is compared when it
records the newest event it was trained on (``meta["training"]["until"]``, written since
2026-12-04) and that event is older than the split's test period; otherwise, or when it was
trained on another dataset or cannot be read, the gate passes without a comparison and says
why. Nothing is lost on a refusal: the new version is written, only ``LATEST`` stays.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from offline.evaluation.champion import (
    GATE_RESAMPLES,
    GateResult,
    compare,
    why_not_comparable,
)
from offline.retrieval.evaluation import holdout_truth, source_runs
from services.retrieval.index import build_cf_index, build_index
from services.retrieval.retriever import ServedIndex, load_served
from services.retrieval.sources import SourceWeights
from shared import metrics
from shared.artefacts.retrieval import LATEST, ArtefactNotFound, RetrievalArtefact
from shared.data.types import Interaction

__all__ = ["GATE_K", "GateResult", "champion_gate", "served_index"]

GATE_K = 100
RUN = "merged"


def _metric(k: int) -> str:
    return f"recall@{k} of the served candidates (merged)"


def served_index(artefact: RetrievalArtefact) -> ServedIndex:
    """The artefact indexed as the service serves it (exact search), without saving it."""
    return ServedIndex(
        artefact.version or "unsaved",
        artefact,
        build_index(artefact, "flat"),
        build_cf_index(artefact, "flat"),
    )


def _per_shopper_recall(
    served: ServedIndex,
    train: Sequence[Interaction],
    test: Sequence[Interaction],
    catalog: Collection[str] | None,
    k: int,
) -> tuple[list[str], np.ndarray]:
    lists: dict[str, dict[str, list[str]]] = {}
    source_runs(served, train, test, {RUN: SourceWeights()}, [k], catalog, lists_out=lists)
    _, truth = holdout_truth(train, test)
    users = sorted(truth)
    got = lists[f"{RUN}@{k}"]
    return users, np.array([metrics.recall_at_k(got[u], truth[u], k) for u in users])


def champion_gate(
    challenger: RetrievalArtefact,
    root: Path | str,
    train: Sequence[Interaction],
    test: Sequence[Interaction],
    catalog: Collection[str] | None = None,
    *,
    k: int = GATE_K,
    resamples: int = GATE_RESAMPLES,
    seed: int = 0,
) -> GateResult:
    """May ``challenger`` replace the version ``root/LATEST`` names? ``train``/``test`` and
    ``catalog`` are the split the challenger was measured on (its training side and test
    side, and the items ranked)."""
    root = Path(root)
    metric = _metric(k)
    if not (root / LATEST).exists():
        return GateResult(True, "no version is published yet", metric=metric)
    try:
        champion = load_served(root, "", "flat")
    except (ArtefactNotFound, ValueError, KeyError, OSError) as exc:
        return GateResult(
            True, f"the published version cannot be read ({exc}): replaced", metric=metric
        )
    name = champion.artefact.version
    if not test:
        return GateResult(True, "the split has no test period: nothing to compare on", name, metric)
    why = why_not_comparable(
        name, champion.artefact.meta, challenger.meta.get("dataset"), min(x.timestamp for x in test)
    )
    if why is not None:
        return GateResult(True, why, name, metric)
    users, new = _per_shopper_recall(served_index(challenger), train, test, catalog, k)
    if not users:
        return GateResult(
            True, "no test shopper has training history: nothing to compare on", name, metric
        )
    _, old = _per_shopper_recall(champion, train, test, catalog, k)
    return compare(new, old, name, metric, resamples=resamples, seed=seed)
