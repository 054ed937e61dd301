"""How much of a difference on test is the training seed: the seeded rows retrained N times.

The paired bootstrap of every table resamples SHOPPERS: it says how much a difference between
two fitted models would move with other shoppers, not how much it moves when the same recipe
is fitted again with another seed. On Online Retail the second is as large as the differences
the tables are read for: on the pooled validation cuts, implicit ALS at the chosen
hyperparameters scored NDCG@10 0.0499 with seed 0 and 0.0474 with seed 2, a difference whose
shopper bootstrap excludes 0 (docs/evaluation.md, 2026-12-03).

``seed_rows`` refits, on the whole training period, every row whose model draws random numbers
(the ALS and BPR peers at their validation-chosen hyperparameters, the served ranking and the
served default) with each seed of ``seeds``; the first seed's lists are the main table's. For
each row it reports NDCG@10 per seed and, per shopper, the mean over seeds. The served default
is then compared with every row on those seed means (a deterministic row such as popularity,
item-kNN or the retrieval artefact keeps its one list; the other served rows, trained with one
seed and not refitted here, are left out), still by the paired bootstrap over shoppers, so a
difference has to hold for the recipe, not for one draw of it.

Nothing here chooses anything: every choice was made on validation before; this only reads the
test lists of the same run again, with more seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from offline.evaluation.peers import InteractionMatrix, make_peer
from offline.evaluation.protocol import Cut, per_user
from offline.evaluation.served import LTR, LTR_BERT, diversified_rows, path_lists, train_path
from offline.evaluation.stats import paired_bootstrap
from shared.data.types import Dataset

SEEDED_FAMILIES = ("als", "bpr")
"""Peer families whose fit draws random numbers (popularity, repeat and item-kNN do not)."""


def seed_rows(
    data: Dataset,
    held: Cut,
    users: Sequence[str],
    outside: set[str],
    catalog: Sequence[str],
    peers: Mapping[str, Mapping[str, Any]],
    served: Mapping[str, Any] | None,
    first: Mapping[str, np.ndarray],
    seeds: Sequence[int],
    *,
    candidates: int,
    tradeoffs: Sequence[float],
    k: int,
    threads: int = 1,
    progress: Callable[[str], None] = print,
) -> dict[str, list[np.ndarray]]:
    """Per row, NDCG@10 per shopper (``users`` order) for each seed of ``seeds``.

    ``first`` holds the main table's per-shopper NDCG@10 (fitted with ``seeds[0]``);
    ``peers`` the peers chosen on validation (pipeline.peer_lists); ``served`` the served
    choices (served.served_rows), or None without ``--served``."""
    if len(seeds) < 2:
        raise ValueError("a seed check needs at least two seeds")
    if served is not None and served["ranking"] == LTR_BERT:
        raise ValueError("the seed check does not refit the cross-encoder feature")
    truth = {u: held.truth[u] for u in users}
    train_items = {x.item_id for x in held.before}
    full = InteractionMatrix.build(held.before, [i for i in catalog if i in train_items])
    peer_names = [name for name, c in peers.items() if c["family"] in SEEDED_FAMILIES]
    served_names: list[str] = []
    diversified: list[Any] = []
    if served is not None:
        served_names = [served["ranking"]]
        if served["default"] != served["ranking"]:
            rows = diversified_rows(served["ranking"], tradeoffs)
            diversified = [d for d in rows if d[0] == served["default"]]
            served_names.append(served["default"])
    out: dict[str, list[np.ndarray]] = {
        name: [np.asarray(first[name])] for name in [*peer_names, *served_names]
    }
    for seed in seeds[1:]:
        fitted: dict[tuple[str, str], Any] = {}
        for name in peer_names:
            c = peers[name]
            key = (c["family"], repr(sorted(c["params"].items())))
            if key not in fitted:
                fitted[key] = make_peer(c["family"], c["params"], seed=seed, threads=threads).fit(
                    full
                )
            lists = fitted[key].recommend(users, k, exclude_history=c["exclude_history"])
            out[name].append(per_user(lists, truth, users))
        if served is not None:
            path = train_path(
                data,
                held.before,
                candidates=candidates,
                seed=seed,
                ltr=served["ranking"] == LTR,
                progress=progress,
            )
            if served["ranking"] == LTR and path.booster is None:
                raise SystemExit(f"seed {seed}: the learned ranking model could not be fitted")
            got = path_lists(
                path,
                data,
                users,
                outside,
                candidates=candidates,
                rankings=[served["ranking"]],
                diversified=diversified,
                k=k,
            )
            for name in served_names:
                out[name].append(per_user(got[name], truth, users))
        progress(f"  seed check: seed {seed} refitted")
    return out


def summary(
    by_seed: Mapping[str, Sequence[np.ndarray]],
    per_shopper: Mapping[str, np.ndarray],
    seeds: Sequence[int],
    default: str | None,
    *,
    resamples: int,
    seed: int,
    unrefitted: Collection[str] = (),
) -> dict[str, Any]:
    """The seed check's record: per row NDCG@10 per seed, the spread, the largest difference
    between two seeds of the same row (with its shopper bootstrap), and the served default's
    seed-mean against every row (``per_shopper``: the main table's values, used for the rows
    without a seed) except ``unrefitted``: rows trained with one seed that this check did not
    refit (the other served rows), whose one draw would stand in for a seed mean."""
    rows: dict[str, Any] = {}
    for name, runs in by_seed.items():
        means = [float(r.mean()) for r in runs]
        hi, lo = int(np.argmax(means)), int(np.argmin(means))
        rows[name] = {
            "ndcg@10": means,
            "mean": float(np.mean(means)),
            "spread": means[hi] - means[lo],
            "seeds_apart": [seeds[hi], seeds[lo]],
            "best_minus_worst_seed": asdict(
                paired_bootstrap(runs[hi], runs[lo], resamples=resamples, seed=seed)
            ),
        }
    averaged = {name: np.mean(np.stack(runs), axis=0) for name, runs in by_seed.items()}
    minus: dict[str, Any] = {}
    if default is not None and default in averaged:
        for name, values in per_shopper.items():
            if name == default or (name in unrefitted and name not in averaged):
                continue
            other = averaged.get(name, values)
            minus[name] = asdict(
                paired_bootstrap(averaged[default], other, resamples=resamples, seed=seed)
            )
    return {"seeds": list(seeds), "rows": rows, "default": default, "default_minus": minus}


def _ci(d: Mapping[str, float]) -> str:
    return f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def table(check: Mapping[str, Any]) -> str:
    """The seed check as Markdown: one row per seeded row, then the default's seed-mean
    differences."""
    seeds = check["seeds"]
    head = "".join(f" seed {s} |" for s in seeds)
    lines = [
        f"| row |{head} mean | spread | best minus worst seed [95% CI] |",
        "|---|" + "---:|" * (len(seeds) + 3),
    ]
    for name, r in check["rows"].items():
        cells = "".join(f" {v:.4f} |" for v in r["ndcg@10"])
        lines.append(
            f"| {name} |{cells} {r['mean']:.4f} | {r['spread']:.4f} | "
            f"{_ci(r['best_minus_worst_seed'])} |"
        )
    if check["default_minus"]:
        lines += [
            "",
            f"| test, mean over seeds: {check['default']} minus | Δ NDCG@10 [95% CI] |",
            "|---|---:|",
            *(f"| {name} | {_ci(d)} |" for name, d in check["default_minus"].items()),
        ]
    return "\n".join(lines)
