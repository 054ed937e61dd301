"""The cross-encoder's publish gate: a fine-tuned version replaces the served one only when it
does not order the same candidate lists measurably worse.

The ranker (and Triton's repository, exported from it) serves whatever ``LATEST`` names under
the model root, so a fine-tune that came out worse (a bad seed, a wrong learning rate, a
broken log) would reach shoppers unseen. After training, ``champion_gate`` scores the version
``LATEST`` names (the champion) on the new version's own evaluation lists: the same held-out
test shoppers, candidate lists, shopper contexts and truth (offline.ranker.training.held_out,
score_lists), each model with its own tokenizer, sequence length and history titles. It refuses
when the challenger's per-shopper NDCG@10 of its order of those lists minus the champion's has
a paired bootstrap 95% interval entirely below 0 (offline.evaluation.champion). A tie passes.

What is compared is the cross-encoder's own order, the score the ranker returns: the served
relevance combines it with behaviour signals (the learned ranking model or the fixed blend),
and each of those has its own gate or weight. The champion is only compared when it records
its training end (``meta["training"]["until"]``, written since 2026-12-08) before the test
period and was trained on the same dataset; otherwise the gate passes and says why. Nothing is
lost on a refusal: the new version is written, only ``LATEST`` stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from offline.evaluation.champion import GATE_RESAMPLES, GateResult, compare, why_not_comparable
from offline.ranker.training import bert_order, shopper_context
from services.ranker.model import load_artefact
from services.ranker.versions import LATEST
from shared import metrics
from shared.data.types import Dataset

GATE_K = 10
METRIC = f"ndcg@{GATE_K} of the cross-encoder's order of the evaluation candidates"


def champion_gate(
    root: Path | str,
    dataset: Dataset,
    history: Mapping[str, Sequence[str]],
    truth: Mapping[str, set[str]],
    candidates: Mapping[str, Sequence[str]],
    challenger_orders: Mapping[str, Sequence[str]],
    held_out_start: datetime | None,
    *,
    batch: int = 64,
    progress: bool = True,
    resamples: int = GATE_RESAMPLES,
    seed: int = 0,
) -> GateResult:
    """May the challenger, whose order of each ``truth`` shopper's ``candidates`` is
    ``challenger_orders``, replace the version ``root/LATEST`` names? ``history`` is every
    shopper's training history, newest first; ``held_out_start`` the test period's first
    event."""
    root = Path(root)
    if not (root / LATEST).exists():
        return GateResult(True, "no version is published yet", metric=METRIC)
    try:
        champion = load_artefact(root)
    except (FileNotFoundError, ValueError, KeyError, OSError, RuntimeError) as exc:
        return GateResult(
            True, f"the published version cannot be read ({exc}): replaced", metric=METRIC
        )
    name = champion.path.name
    users = sorted(truth)
    if held_out_start is None or not users:
        return GateResult(
            True, "no held-out shopper to compare on: nothing to compare on", name, METRIC
        )
    why = why_not_comparable(name, champion.meta, dataset.name, held_out_start)
    if why is not None:
        return GateResult(True, why, name, METRIC)
    titles = int(champion.meta.get("train_config", {}).get("history_titles", 8))
    max_length = int(champion.meta.get("max_length", 64))
    old: list[float] = []
    for user in tqdm(users, desc=f"gate: scoring {name}", disable=not progress):
        context = shopper_context(list(history[user]), dataset.items, titles)
        order = bert_order(
            champion.model,
            champion.tokenizer,
            context,
            list(candidates[user]),
            dataset.items,
            max_length,
            batch,
        )
        old.append(metrics.ndcg_at_k(order, truth[user], GATE_K))
    new = [metrics.ndcg_at_k(list(challenger_orders[u]), truth[u], GATE_K) for u in users]
    return compare(np.array(new), np.array(old), name, METRIC, resamples=resamples, seed=seed)
