"""Train the two-tower retrieval model and publish a versioned artefact.

    python scripts/train_retrieval.py --dataset synthetic
    python scripts/train_retrieval.py --dataset online-retail --epochs 4 --dim 64 --seed 0

Trains on the TRAIN side of the temporal split only, reports Recall/HitRate/NDCG on the test
side against popularity, writes var/models/retrieval/<version>/ and points LATEST at it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from services.retrieval.model import TrainConfig
from services.retrieval.publish import train_and_publish
from shared.data import Dataset, online_retail, synthetic


def load_dataset(name: str) -> Dataset:
    if name == "synthetic":
        return synthetic.generate()
    if name == "online-retail":
        return online_retail.load()
    raise SystemExit(f"unknown dataset {name!r}")


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["synthetic", "online-retail"], default="synthetic")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--dim", type=int, default=defaults.dim)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("var/models/retrieval"))
    parser.add_argument("--version", default=None, help="Version name; default time-dataset-seed.")
    parser.add_argument("--no-latest", action="store_true", help="Do not move LATEST.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    config = TrainConfig(
        dim=args.dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        temperature=args.temperature,
    )
    dataset = load_dataset(args.dataset)
    print(
        f"dataset {dataset.name}: {len(dataset.items)} items, "
        f"{len(dataset.interactions)} interactions",
        flush=True,
    )
    start = time.perf_counter()

    def progress(epoch: int, loss: float) -> None:
        elapsed = time.perf_counter() - start
        print(f"epoch {epoch}/{config.epochs} loss {loss:.4f} ({elapsed:.1f}s)", flush=True)

    path = train_and_publish(
        dataset,
        args.out,
        config,
        args.seed,
        version=args.version,
        set_latest=not args.no_latest,
        on_epoch=progress,
    )

    meta = json.loads((path / "meta.json").read_text())
    for method in ("two_tower", "popularity"):
        m = meta["metrics"][method]
        print(
            f"{method:>10}: "
            + "  ".join(f"recall@{k}={m[f'recall@{k}']:.4f}" for k in (50, 100, 200))
        )
    print(f"written {path} in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
