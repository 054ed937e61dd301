"""Train on a dataset's temporal training split, measure on its test split, publish a version.

    python -m offline.retrieval.publish --data synthetic      # or scripts/train_retrieval.py
    python -m offline.retrieval.publish --data FOLDER --epochs 4 --dim 64 --seed 0

Trains on the TRAIN side of the temporal split only, reports Recall/HitRate/NDCG on the test
side against popularity, writes var/models/retrieval/<version>/ and points LATEST at it,
unless the publish gate finds it worse than the version LATEST names on the same shoppers
(offline.retrieval.gate: the version is written, LATEST stays, the command exits 3).
``--promote VERSION`` points LATEST at an existing version (after a refusal, or to roll
back). In code:

    from offline.retrieval.publish import train_and_publish
    path = train_and_publish(synthetic.generate(), "var/models/retrieval")
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from offline.evaluation.champion import report
from offline.retrieval.cf import DEFAULT_CF_CONFIG, CfConfig, train_cf
from offline.retrieval.evaluation import default_runs, evaluate_retrieval, source_runs
from offline.retrieval.gate import champion_gate
from offline.retrieval.training import TrainConfig, train
from services.retrieval.index import build_cf_index, build_index
from services.retrieval.retriever import ServedIndex
from shared.artefacts.retrieval import (
    ArtefactError,
    RetrievalArtefact,
    save_artefact,
    set_latest_version,
)
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import CATALOGS, Dataset, evaluation_catalog, temporal_split


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
    catalog: str = "cut",
    cf: CfConfig | None = DEFAULT_CF_CONFIG,
) -> RetrievalArtefact:
    """Train on the split's train side; put test-side metrics into ``meta["metrics"]``.

    With ``cf`` (the default) the artefact also gets implicit-ALS item factors trained on the
    same interactions (offline.retrieval.cf); ``cf=None`` writes a two-tower-only version.

    The artefact holds every item (the service may recommend all of them); the measurement
    ranks the ``catalog`` of shared.data.types.evaluation_catalog, by default the items known
    at the cut, and its protocol line says which.
    """
    train_part, test_part = temporal_split(dataset, train_fraction)
    ranked, catalog_note = evaluation_catalog(dataset, catalog, train_fraction)
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
    if cf is not None:
        artefact.cf, artefact.meta["cf"] = train_cf(train_part, artefact.item_ids, cf, seed)
    index = build_index(artefact, "flat")
    results = evaluate_retrieval(artefact, index, train_part, test_part, ks, catalog=ranked)
    served = ServedIndex("unsaved", artefact, index, build_cf_index(artefact, "flat"))
    results.update(
        source_runs(served, train_part, test_part, default_runs(served), ks, catalog=ranked)
    )
    metrics: dict[str, Any] = {
        "protocol": (
            f"temporal split at the {train_fraction:.0%} time quantile; train history -> "
            f"test items; {catalog_note}; nothing else excluded; exact (flat) index"
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
    catalog: str = "cut",
    cf: CfConfig | None = DEFAULT_CF_CONFIG,
    gate: bool = True,
) -> Path:
    """Train, evaluate and save a new version (and point LATEST at it unless the gate
    refuses; see ``publish``); returns its folder."""
    artefact = train_and_evaluate(
        dataset,
        config,
        seed,
        train_fraction=train_fraction,
        on_epoch=on_epoch,
        catalog=catalog,
        cf=cf,
    )
    return publish(
        artefact,
        dataset,
        root,
        version,
        set_latest=set_latest,
        gate=gate,
        train_fraction=train_fraction,
        catalog=catalog,
    )


def publish(
    artefact: RetrievalArtefact,
    dataset: Dataset,
    root: Path | str,
    version: str | None = None,
    *,
    set_latest: bool = True,
    gate: bool = True,
    train_fraction: float = 0.8,
    catalog: str = "cut",
) -> Path:
    """Save ``artefact`` (trained on ``dataset``'s split at ``train_fraction``) as a new version.

    With ``set_latest`` LATEST moves to it, unless ``gate`` (the default) finds it worse than
    the version LATEST names on this split's shoppers (offline.retrieval.gate). The gate's
    decision is recorded in the version's ``meta["publish_gate"]``; a refused version is
    still written, so ``set_latest_version`` can publish it by hand."""
    passed = True
    if set_latest and gate:
        train_part, test_part = temporal_split(dataset, train_fraction)
        ranked, _ = evaluation_catalog(dataset, catalog, train_fraction)
        result = champion_gate(artefact, root, train_part, test_part, ranked)
        artefact.meta["publish_gate"] = result.record()
        passed = result.passed
    return save_artefact(artefact, root, version, set_latest=set_latest and passed)


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m offline.retrieval.publish",
        description="Train the two-tower retrieval model and publish a versioned artefact.",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--catalog",
        choices=CATALOGS,
        default="cut",
        help="what the test-side measurement ranks: the items known at the cut (default) or "
        "every item; the published artefact holds every item either way",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--dim", type=int, default=defaults.dim)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("var/models/retrieval"))
    parser.add_argument("--version", default=None, help="Version name; default time-dataset-seed.")
    parser.add_argument("--no-latest", action="store_true", help="Do not move LATEST.")
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="move LATEST without comparing with the published version (default: LATEST "
        "stays when the new version's recall@100 is worse on this split's shoppers, a "
        "paired bootstrap interval below 0; the version is written either way)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--no-cf",
        action="store_true",
        help="Skip the implicit-ALS factors: a two-tower-only version (no collaborative source).",
    )
    parser.add_argument(
        "--promote",
        metavar="VERSION",
        default=None,
        help="train nothing: point LATEST under --out at this existing version (a version "
        "the gate refused, or an older one to roll back to)",
    )
    args = parser.parse_args(argv)
    if args.promote is not None:
        try:
            set_latest_version(args.out, args.promote)
        except ArtefactError as exc:
            parser.exit(2, f"{parser.prog}: error: --promote: {exc}\n")
        print(f"LATEST -> {args.promote} under {args.out}")
        return 0

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    config = TrainConfig(
        dim=args.dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        temperature=args.temperature,
    )
    dataset = data_from_args(args)
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
        catalog=args.catalog,
        cf=None if args.no_cf else CfConfig(),
        gate=not args.no_gate,
    )

    meta = json.loads((path / "meta.json").read_text())
    for method in ("two_tower", "collaborative", "merged", "popularity"):
        if method not in meta["metrics"]:
            continue
        m = meta["metrics"][method]
        print(
            f"{method:>13}: "
            + "  ".join(f"recall@{k}={m[f'recall@{k}']:.4f}" for k in (50, 100, 200))
        )
    print(f"written {path} in {time.perf_counter() - start:.1f}s")
    gate = meta.get("publish_gate")
    if gate is None:
        print("LATEST not moved (--no-latest)" if args.no_latest else "LATEST moved (--no-gate)")
        return 0
    code = report(
        gate,
        path.name,
        f"python -m offline.retrieval.publish --promote {path.name} --out {args.out}",
    )
    if code == 0:
        print(f"LATEST -> {path.name}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
