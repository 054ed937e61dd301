"""Offline quality of retrieval alone, against a popularity baseline.

Protocol: temporal split (shared.data.temporal_split); a user's TRAIN history, most recent
first, gives the user vector; the truth is the set of items that user interacted with in the
TEST period; candidates are ranked over the full catalog with nothing excluded (repeat
purchases are real in retail). Users without train history or without test items are left
out, the same users for both methods. Metrics come from shared.metrics.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

import numpy as np

from offline.retrieval.training import recent_histories
from services.retrieval.retriever import ServedIndex, retrieve_for_history
from services.retrieval.sources import DEFAULT_HISTORY_DECAY, SourceWeights
from shared import metrics
from shared.artefacts.retrieval import ColdStartError, RetrievalArtefact
from shared.data.types import Interaction


class SearchIndex(Protocol):
    """What the evaluation needs of an index (services.retrieval.index.CandidateIndex)."""

    def search(
        self, user_vector: np.ndarray, n: int, exclude: Collection[str] = ...
    ) -> list[tuple[str, float]]: ...


def holdout_truth(
    train: Sequence[Interaction], test: Sequence[Interaction]
) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """(train histories most recent first, test item sets) for users present in both."""
    histories = recent_histories(train)
    truth: dict[str, set[str]] = {}
    for x in test:
        if x.user_id in histories:
            truth.setdefault(x.user_id, set()).add(x.item_id)
    return {u: histories[u] for u in truth}, truth


def evaluate_retrieval(
    artefact: RetrievalArtefact,
    index: SearchIndex,
    train: Sequence[Interaction],
    test: Sequence[Interaction],
    ks: Sequence[int] = (50, 100, 200),
    catalog: Collection[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Recall, HitRate, NDCG, ... at each k for the two-tower retrieval and for popularity.

    Users whose whole history is unknown to the artefact get the popularity list, exactly as
    the service answers them. ``catalog`` (default: every item of the artefact) is what both
    methods may rank; a test item outside it stays in the truth as a miss.
    """
    histories, truth = holdout_truth(train, test)
    n = max(ks)
    known = set(catalog) if catalog is not None else set(artefact.item_ids)
    outside = [i for i in artefact.item_ids if i not in known]
    popular = [i for i in artefact.popular_items(n + len(outside)) if i in known][:n]
    retrieved: dict[str, list[str]] = {}
    for user, history in histories.items():
        try:
            vector = artefact.user_vector(history)
        except ColdStartError:
            retrieved[user] = popular
            continue
        retrieved[user] = [item for item, _ in index.search(vector, n, exclude=outside)]
    baseline = dict.fromkeys(histories, popular)
    return {
        "two_tower": metrics.evaluate_lists(retrieved, truth, ks),
        "popularity": metrics.evaluate_lists(baseline, truth, ks),
    }


def source_runs(
    served: ServedIndex,
    train: Sequence[Interaction],
    test: Sequence[Interaction],
    runs: Mapping[str, SourceWeights],
    ks: Sequence[int] = (50, 100, 200),
    catalog: Collection[str] | None = None,
    history_decay: float = DEFAULT_HISTORY_DECAY,
    lists_out: dict[str, dict[str, list[str]]] | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of the served candidate list (``services.retrieval.retriever``, the code the
    service runs: every enabled source, merged) under each named ``SourceWeights``.

    Each k is its own request for k candidates, as the service answers it: a fused list is
    not a prefix of a longer one (a longer request asks every source for more items, and
    those add to the fused scores). The same protocol and users as ``evaluate_retrieval``: a
    user whose history holds no known item gets the popularity list in every run, the same
    list it gets there. ``lists_out``, when given, receives every run's lists under
    ``"<name>@<k>"`` (for paired comparisons).
    """
    histories, truth = holdout_truth(train, test)
    artefact = served.artefact
    known = set(catalog) if catalog is not None else set(artefact.item_ids)
    outside = {i for i in artefact.item_ids if i not in known}
    popular = [i for i in artefact.popular_items(max(ks) + len(outside)) if i in known]
    out: dict[str, dict[str, float]] = {}
    for name, weights in runs.items():
        out[name] = {}
        for k in ks:
            lists: dict[str, list[str]] = {}
            for user, history in histories.items():
                if not artefact.known(history):
                    lists[user] = popular[:k]
                    continue
                found = retrieve_for_history(
                    served, history, k, outside, weights=weights, history_decay=history_decay
                )
                lists[user] = [item for item, _, _ in found.items]
            out[name].update(metrics.evaluate_lists(lists, truth, [k]))
            if lists_out is not None:
                lists_out[f"{name}@{k}"] = lists
    return out


def default_runs(served: ServedIndex) -> dict[str, SourceWeights]:
    """Each source alone and the served merge (default weights), as far as ``served`` has
    the sources: the rows every published version records."""
    default = SourceWeights()
    runs = {"history": SourceWeights(0.0, 0.0, 1.0, default.rrf_k)}
    if served.cf_index is not None:
        runs["collaborative"] = SourceWeights(0.0, 1.0, 0.0, default.rrf_k)
    runs["merged"] = default
    return runs
