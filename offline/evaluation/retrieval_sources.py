"""Which candidate sources, with which fusion weights: chosen on validation, measured once on test.

    python scripts/eval_retrieval_sources.py --data online-retail --seed 0

1. Validation (inside the training period): cut the TRAIN side of shared.data.temporal_split
   at its own 80% time quantile; train what ``offline.retrieval.publish`` trains (two-tower,
   plus implicit ALS with its own nested validation grid) on the part before that cut; score
   the served candidate list (``services.retrieval.retriever``, every source, weighted RRF;
   each k its own request for k candidates) of every user with history before and items
   after the cut, for each cell of a small weight grid. The best Recall@``--choose-k`` is
   chosen twice: with the history source off (two-tower + ALS) and on (all three).
2. Test (read once): retrain both models on the whole training period, and score each source
   alone, the two chosen merges and popularity with the protocol of offline.retrieval.evaluation
   (train history -> test items, items known at the cut, nothing excluded), with a paired
   bootstrap 95% interval (users resampled) of each run's Recall@``--choose-k`` minus the
   two-tower's.

Prints both tables; JSON goes to var/eval/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from offline.evaluation.protocol import per_user
from offline.evaluation.stats import paired_bootstrap
from offline.retrieval.cf import DEFAULT_CF_CONFIG, train_cf
from offline.retrieval.evaluation import evaluate_retrieval, holdout_truth, source_runs
from offline.retrieval.training import TrainConfig, train
from services.retrieval.index import build_cf_index, build_index
from services.retrieval.retriever import ServedIndex
from services.retrieval.sources import DEFAULT_RRF_K, SourceWeights
from shared import metrics
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import (
    Dataset,
    Interaction,
    catalog_at,
    evaluation_catalog,
    split_log,
    temporal_split,
)

CF_WEIGHTS = (0.0, 0.5, 1.0, 2.0)
HISTORY_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
SINGLE = {
    "two_tower": SourceWeights(1.0, 0.0, 0.0),
    "collaborative": SourceWeights(0.0, 1.0, 0.0),
    "history": SourceWeights(0.0, 0.0, 1.0),
}


def grid(rrf_k: float = DEFAULT_RRF_K) -> dict[str, SourceWeights]:
    """Two-tower weight 1 (RRF is scale-free, so only ratios matter) x the ALS and history
    weights, the two-tower-only cell included."""
    return {
        f"tt1-cf{c:g}-hist{h:g}": SourceWeights(1.0, c, h, rrf_k)
        for c, h in itertools.product(CF_WEIGHTS, HISTORY_WEIGHTS)
    }


def served_models(
    dataset: Dataset, interactions: Sequence[Interaction], config: TrainConfig, seed: int
) -> ServedIndex:
    """What publish would serve had the training period been ``interactions``."""
    artefact = train(interactions, dataset.items, config, seed, dataset=dataset.name)
    artefact.cf, artefact.meta["cf"] = train_cf(interactions, artefact.item_ids, seed=seed)
    return ServedIndex(
        "eval", artefact, build_index(artefact, "flat"), build_cf_index(artefact, "flat")
    )


def best(scores: dict[str, dict[str, float]], key: str, history_on: bool) -> str:
    cells = [name for name in scores if name.endswith("-hist0") != history_on]
    return max(cells, key=lambda name: (scores[name][key], -len(name)))


def paired_difference(
    lists: dict[str, list[str]],
    reference: dict[str, list[str]],
    truth: dict[str, set[str]],
    k: int,
    replicates: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean per-user Recall@k of ``lists`` minus ``reference`` and its paired bootstrap 95%
    interval (the same resampled users on both sides)."""
    users = sorted(u for u, t in truth.items() if t)
    a = per_user(lists, truth, users, k, metrics.recall_at_k)
    b = per_user(reference, truth, users, k, metrics.recall_at_k)
    d = paired_bootstrap(a, b, resamples=replicates, seed=seed)
    return d.mean, d.low, d.high


def _row(name: str, m: dict[str, float], ks: Sequence[int]) -> str:
    cells = [f"{m[f'{metric}@{k}']:.4f}" for k in ks for metric in ("recall", "hit_rate", "ndcg")]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, default="online-retail")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--ks", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--choose-k", type=int, default=100, help="choose on Recall@this k")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("var/eval"))
    args = parser.parse_args(argv)
    if args.choose_k not in args.ks:
        parser.error("--choose-k must be one of --ks")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dataset = data_from_args(args)
    config = TrainConfig(epochs=args.epochs)
    train_part, test_part = temporal_split(dataset, 0.8)
    before, after = split_log(train_part, 0.8)
    key = f"recall@{args.choose_k}"

    # 1. validation: every grid cell, on models that never saw the validation period.
    val_served = served_models(dataset, before, config, args.seed)
    val_catalog = catalog_at(dataset, after[0].timestamp)
    validation = source_runs(val_served, before, after, grid(), args.ks, catalog=val_catalog)
    chosen = {"two_tower+collaborative": best(validation, key, False)}
    chosen["two_tower+collaborative+history"] = best(validation, key, True)
    print(f"validation done ({time.perf_counter() - start:.0f}s)", flush=True)

    # 2. test, once: the models of the whole training period.
    served = served_models(dataset, train_part, config, args.seed)
    ranked, catalog_note = evaluation_catalog(dataset, "cut", 0.8)
    test = evaluate_retrieval(
        served.artefact, served.index, train_part, test_part, args.ks, catalog=ranked
    )
    runs = {**SINGLE, **{label: grid()[cell] for label, cell in chosen.items()}}
    test_lists: dict[str, dict[str, list[str]]] = {}
    test.update(
        source_runs(
            served, train_part, test_part, runs, args.ks, catalog=ranked, lists_out=test_lists
        )
    )
    _, truth = holdout_truth(train_part, test_part)
    at = f"@{args.choose_k}"
    differences = {
        name: paired_difference(
            test_lists[name + at], test_lists["two_tower" + at], truth, args.choose_k
        )
        for name in runs
        if name != "two_tower"
    }
    print(f"test done ({time.perf_counter() - start:.0f}s)\n", flush=True)

    header = [f"{m}@{k}" for k in args.ks for m in ("recall", "hit_rate", "ndcg")]
    users = int(validation[next(iter(validation))]["users"])
    print(f"Validation ({dataset.name}, {users} users), every cell, by {key}:\n")
    print("| weights (RRF k=60) | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(header))
    for name in sorted(validation, key=lambda n: -validation[n][key]):
        print(_row(name, validation[name], args.ks))
    print(f"\nchosen: {chosen}")
    users = int(test["two_tower"]["users"])
    print(f"\nTest ({dataset.name}, {catalog_note}, {users} users), read once:\n")
    print("| candidates | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(header))
    for name in ("popularity", *runs):
        label = f"{name} ({chosen[name]})" if name in chosen else name
        print(_row(label, test[name], args.ks))
    print(f"\n{key} minus two_tower's, paired bootstrap 95% interval over users:\n")
    for name, (mean, low, high) in differences.items():
        print(f"| {name} | {mean:+.4f} [{low:+.4f}, {high:+.4f}] |")

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    path = args.out / f"retrieval-sources-{dataset.name}-{stamp:%Y%m%dT%H%M%SZ}.json"
    record: dict[str, Any] = {
        "created_at": stamp.isoformat(),
        "machine": platform.machine(),
        "dataset": dataset.name,
        "seed": args.seed,
        "config": asdict(config),
        "cf": {
            "validation_models": val_served.artefact.meta["cf"],
            "test_models": served.artefact.meta["cf"],
            "grid_defaults": asdict(DEFAULT_CF_CONFIG),
        },
        "validation": validation,
        "chosen": chosen,
        "test": test,
        f"test_{key}_minus_two_tower": differences,
        "seconds": round(time.perf_counter() - start, 1),
    }
    path.write_text(json.dumps(record, indent=2))
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
