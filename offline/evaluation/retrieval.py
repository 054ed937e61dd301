"""Offline quality of retrieval alone on a real temporal split, against popularity.

    python scripts/eval_retrieval.py --data online-retail --seeds 0 1 2 [--catalog cut|full]

For each seed: train the two-tower model on the TRAIN side of shared.data.temporal_split
(80% time quantile), then for every user with train history and test items rank the
evaluation catalog (by default the items known at the cut; --catalog full: every item) from
the user's train history and score the test items with shared.metrics
(Recall/HitRate/NDCG@50/100/200). Popularity = the most interacted train items, the same list
for everyone. Prints mean and standard deviation over seeds; JSON goes to var/eval/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from offline.retrieval.publish import train_and_evaluate
from offline.retrieval.training import TrainConfig
from shared.artefacts.retrieval import RetrievalArtefact
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import CATALOGS

METRICS = ("recall", "hit_rate", "ndcg")


def runs_protocol(artefact: RetrievalArtefact) -> str:
    return str(artefact.meta["metrics"]["protocol"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, default="online-retail")
    parser.add_argument("--catalog", choices=CATALOGS, default="cut")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ks", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("var/eval"))
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    dataset = data_from_args(args)
    config = TrainConfig(epochs=args.epochs)
    runs: list[dict[str, dict[str, float]]] = []
    start = time.perf_counter()
    for seed in args.seeds:
        artefact = train_and_evaluate(dataset, config, seed, ks=args.ks, catalog=args.catalog)
        runs.append({m: artefact.meta["metrics"][m] for m in ("two_tower", "popularity")})
        print(f"seed {seed} done ({time.perf_counter() - start:.0f}s)", flush=True)

    users = int(runs[0]["two_tower"]["users"])
    print(
        f"\n{dataset.name}: {runs_protocol(artefact)}, {users} evaluated users, "
        f"seeds {args.seeds}, mean ± std over seeds\n"
    )
    header = [f"{m}@{k}" for k in args.ks for m in METRICS]
    print("| method | " + " | ".join(header) + " |")
    print("|---|" + "---|" * len(header))
    summary: dict[str, dict[str, list[float]]] = {}
    for method in ("two_tower", "popularity"):
        cells = []
        summary[method] = {}
        for key in header:
            values = np.array([r[method][key] for r in runs])
            summary[method][key] = [float(values.mean()), float(values.std())]
            cells.append(
                f"{values.mean():.4f} ± {values.std():.4f}"
                if method == "two_tower"
                else f"{values.mean():.4f}"
            )
        print(f"| {method} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    path = args.out / f"retrieval-{dataset.name}-{stamp:%Y%m%dT%H%M%SZ}.json"
    path.write_text(
        json.dumps(
            {
                "created_at": stamp.isoformat(),
                "machine": platform.machine(),
                "dataset": dataset.name,
                "protocol": runs_protocol(artefact),
                "seeds": args.seeds,
                "config": config.__dict__,
                "users": users,
                "summary": summary,
                "runs": runs,
            },
            indent=2,
        )
    )
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
