"""Offline evaluation of the whole pipeline, stage by stage, against reference peers.

    python scripts/evaluate.py --data FOLDER|online-retail|synthetic   # or
    python -m offline.evaluation.pipeline ...
        [--methods all|retrieval|peers] [--catalog cut|full] [--retrieval-dir DIR]
        [--ranker-dir DIR] [--users 0] [--candidates 100] [--tradeoffs 0.25,0.5,0.75]
        [--validate-pipeline] [--resamples 1000] [--record docs/evaluation.md]

Protocol (offline.evaluation.protocol; docs/evaluation.md): global temporal split at the 80%
time quantile; inside the training period a validation cut at ITS 80% time quantile. Every
choice is made on the validation cut: the peers' hyperparameters (fit on its early part,
NDCG@10 on its late part) and the best baseline; with --validate-pipeline the pipeline rows
are scored there too. The test period is read once: every eligible test shopper (training
history and test items; --users N only samples for smoke runs, and the note says so). A
shopper's TRAIN history (most recent first) drives every method; the truth is the set of
items the shopper interacted with in the TEST period; retrieval ranks the evaluation catalog
(FAISS, exact): by default the catalog as known at the cut, with --catalog full every item.
Test items outside the catalog stay in the truth, as misses no method can avoid. Compared on
the same shoppers:

- peers                popularity, repeat purchases, implicit ALS / BPR / item-kNN, each with
                       history allowed and excluded (offline.evaluation.peers)
- retrieval            two-tower + FAISS order                 (--methods retrieval or all)
- + BERT ranker        the top --candidates retrieval candidates ordered by the cross-encoder
- + BERT blend(w)      ordered by w * z(BERT) + (1 - w) * z(retrieval score)
- + DPP(t) / + MMR(t)  the blended relevance at --ranker-weight (the orchestrator's default)
                       diversified at trade-off t (services.reranker)      (--methods all)

Each row: NDCG@10 with the paired bootstrap 95% CI (offline.evaluation.stats) of its
difference to retrieval order and to the best baseline, its validation NDCG@10, and (shared.
metrics) Precision/Recall/NDCG/HitRate/MRR @10 and @50, item coverage@10, ILD@10 over MiniLM
title embeddings, category coverage@10 (leaf categories; derived from titles on Online
Retail), near-duplicates@10 (same-leaf pairs), novelty@10. Writes a Markdown table (with
--record) and a PNG of NDCG@10 against ILD@10 (to --figure, or with --record to
docs/figures/; an unrecorded run writes none unless --figure asks). The artefacts must have been
trained on the same dataset: scripts/train_retrieval.py and scripts/train_ranker.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from offline.evaluation import seed_check
from offline.evaluation.peers import (
    FAMILIES,
    GRIDS,
    SMOKE_GRIDS,
    TUNED,
    InteractionMatrix,
    describe,
    make_peer,
    modes,
    peer_name,
    tune,
)
from offline.evaluation.protocol import (
    TRAIN_FRACTION,
    VALIDATION_FRACTION,
    Cut,
    holdout_cut,
    per_user,
    sample,
    validation_cut,
)
from offline.evaluation.served import (
    EARLIER_VALIDATION_CUTS,
    KNEE_TOLERANCE,
    served_rows,
    validation_cuts,
)
from offline.evaluation.stats import paired_bootstrap
from offline.ranker.training import candidate_text, shopper_context
from offline.retrieval.text import title_embeddings
from services.orchestrator.blend import blend
from services.orchestrator.config import OrchestratorSettings
from services.ranker.model import encode_pairs, load_artefact, score_arrays
from services.reranker.rerank import Method, RerankParams, rerank
from services.retrieval.index import build_index
from shared import metrics
from shared.artefacts.retrieval import ColdStartError, artefact_dir
from shared.artefacts.retrieval import load_artefact as load_retrieval
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import CATALOGS, CatalogItem, Dataset, Interaction, evaluation_catalog

KS = (10, 50)
METHODS = ("all", "retrieval", "peers")


def _check_dataset(meta: dict[str, Any], dataset: str, what: str) -> None:
    trained_on = meta.get("dataset")
    if trained_on != dataset:
        raise SystemExit(
            f"the {what} artefact was trained on {trained_on!r}, not {dataset!r}; train one "
            f"with scripts/train_{what}.py --data ... on the same data and pass its folder"
        )


def _beyond_accuracy(
    lists: dict[str, list[str]],
    title_vec: dict[str, np.ndarray],
    category: dict[str, str],
    share: dict[str, float],
    catalog_size: int,
) -> dict[str, float]:
    tops = [ranked[:10] for ranked in lists.values()]
    return {
        "coverage@10": metrics.item_coverage(tops, catalog_size),
        "ild@10": float(np.mean([metrics.intra_list_diversity(t, title_vec) for t in tops])),
        "catcov@10": float(np.mean([metrics.category_coverage(t, category, 10) for t in tops])),
        "novelty@10": float(np.mean([metrics.novelty(t, share, 10) for t in tops])),
    }


@dataclass(frozen=True)
class Context:
    """What every method's lists are built from: the data, the evaluation catalog, and the
    stage artefacts (None where ``--methods`` does not need them)."""

    data: Dataset
    catalog: dict[str, CatalogItem]
    outside: set[str]
    retrieval: Any = None
    index: Any = None
    ranker: Any = None


def peer_lists(
    ns: argparse.Namespace,
    train: list[Interaction],
    valid: Cut,
    valid_users: list[str],
    users: list[str],
    catalog: dict[str, CatalogItem],
) -> tuple[dict[str, dict[str, list[str]]], dict[str, dict[str, Any]]]:
    """Every peer row's test lists and its choice on the validation cut.

    Hyperparameters are chosen per (family, history mode) on the validation cut (fit on its
    early part, NDCG@10 on its late part), then the peer is refitted on the whole training
    period and recommends for the test shoppers.
    """
    grids = SMOKE_GRIDS if ns.peer_grid == "smoke" else GRIDS
    fit_items = {x.item_id for x in valid.before}
    train_items = {x.item_id for x in train}
    # Columns in catalog order, so popularity ties break as the artefact's fallback does.
    fit_on = InteractionMatrix.build(valid.before, [i for i in catalog if i in fit_items])
    full = InteractionMatrix.build(train, [i for i in catalog if i in train_items])
    truth = {u: valid.truth[u] for u in valid_users}
    n = max(KS)
    lists: dict[str, dict[str, list[str]]] = {}
    chosen: dict[str, dict[str, Any]] = {}
    for family in FAMILIES:
        grid = grids[family] if family in TUNED else [{}]
        tuned = tune(family, grid, fit_on, truth, seed=ns.seed, threads=ns.threads)
        fitted: dict[str, Any] = {}
        for exclude in modes(family):
            best = tuned[exclude]
            key = describe(best.params)
            if key not in fitted:
                fitted[key] = make_peer(family, best.params, seed=ns.seed, threads=ns.threads).fit(
                    full
                )
            name = peer_name(family, exclude)
            lists[name] = fitted[key].recommend(users, n, exclude_history=exclude)
            chosen[name] = {
                "family": family,
                "exclude_history": exclude,
                "params": best.params,
                "validation_ndcg@10": best.score,
                "grid_points": len(best.tried),
            }
        print(f"  peers: {family} tuned and refitted", flush=True)
    return lists, chosen


def _diversified_names(ns: argparse.Namespace) -> tuple[str, list[tuple[Method, float]]]:
    stage = "+ BERT" if ns.ranker_weight == 1.0 else f"+ BERT blend({ns.ranker_weight:g})"
    return stage, [(m, t) for m in (Method.DPP, Method.MMR) for t in ns.tradeoffs]


def pipeline_lists(
    ns: argparse.Namespace,
    ctx: Context,
    users: list[str],
    histories: dict[str, list[str]],
) -> dict[str, dict[str, list[str]]]:
    """The product's own rows for ``users``: retrieval order, and with ``--methods all`` the
    BERT ranker, the blends and the diversified lists."""
    retrieval, catalog = ctx.retrieval, ctx.catalog
    lists: dict[str, dict[str, list[str]]] = {"retrieval": {}}
    full = ns.methods == "all"
    stage, diversified = _diversified_names(ns)
    if full:
        lists["+ BERT"] = {}
        for w in ns.blend_weights:
            lists[f"+ BERT blend({w:g})"] = {}
        for m, t in diversified:
            lists[f"{stage} + {m.name}({t:g})"] = {}
    for n_done, user in enumerate(users, 1):
        try:
            vector = retrieval.user_vector(histories[user])
            found = ctx.index.search(vector, ns.candidates, exclude=ctx.outside)
        except ColdStartError:
            popular_cands = retrieval.popular_items(ns.candidates + len(ctx.outside))
            found = [(c, -float(r)) for r, c in enumerate(popular_cands)]
        found = [(c, s) for c, s in found if c in catalog][: ns.candidates]
        cands = [c for c, _ in found]
        prior = [s for _, s in found]
        lists["retrieval"][user] = cands
        if not full:
            continue
        text = shopper_context(histories[user], ctx.data.items)
        scores = []
        for start in range(0, len(cands), 64):
            chunk = cands[start : start + 64]
            arrays = encode_pairs(
                ctx.ranker.tokenizer,
                [text] * len(chunk),
                [candidate_text(ctx.data.items[c]) for c in chunk],
                ctx.ranker.max_length,
            )
            scores.extend(score_arrays(ctx.ranker.model, arrays).tolist())
        rel = np.asarray(scores)
        lists["+ BERT"][user] = [cands[i] for i in np.argsort(-rel, kind="stable")]
        for w in ns.blend_weights:
            mixed = blend(rel, prior, w)
            lists[f"+ BERT blend({w:g})"][user] = [
                cands[i] for i in np.argsort(-mixed, kind="stable")
            ]
        rows_ = [retrieval.row(c) for c in cands]
        emb = retrieval.item_vectors[[r for r in rows_ if r is not None]]
        if len(emb) != len(cands):
            raise SystemExit("a candidate has no retrieval vector; artefacts disagree")
        cats = [ctx.data.items[c].top_category for c in cands]
        relevance = blend(rel, prior, ns.ranker_weight)  # what the orchestrator sends
        for m, t in diversified:
            sel = rerank(relevance, emb, cats, RerankParams(k=max(KS), method=m, tradeoff=t))
            lists[f"{stage} + {m.name}({t:g})"][user] = [cands[i] for i in sel.indices]
        if n_done % 100 == 0:
            print(f"  {n_done}/{len(users)} users", flush=True)
    return lists


def _load_stages(ns: argparse.Namespace, data: Dataset, ctx: Context) -> Context:
    if ns.methods == "peers":
        return ctx
    retrieval = load_retrieval(artefact_dir(ns.retrieval_dir))
    _check_dataset(retrieval.meta, data.name, "retrieval")
    ranker = None
    if ns.methods == "all":
        ranker = load_artefact(ns.ranker_dir)
        _check_dataset(ranker.meta, data.name, "ranker")
    index = build_index(retrieval, "flat")
    return Context(data, ctx.catalog, ctx.outside, retrieval, index, ranker)


def compare(
    rows: list[dict[str, Any]],
    per_shopper: dict[str, np.ndarray],
    reference: str | None,
    key: str,
    *,
    resamples: int,
    seed: int,
) -> None:
    """Set ``row[key]`` to the paired bootstrap difference of NDCG@10 to ``reference``."""
    for row in rows:
        if reference is None or row["method"] == reference:
            row[key] = None
            continue
        diff = paired_bootstrap(
            per_shopper[row["method"]], per_shopper[reference], resamples=resamples, seed=seed
        )
        row[key] = {"mean": diff.mean, "low": diff.low, "high": diff.high}


def run(ns: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    t0 = time.perf_counter()
    data = data_from_args(ns)
    held = holdout_cut(data, TRAIN_FRACTION)
    valid = validation_cut(held.before, VALIDATION_FRACTION)
    catalog, catalog_note = evaluation_catalog(data, ns.catalog, TRAIN_FRACTION)
    outside = set(data.items) - set(catalog)
    if not held.users:
        raise SystemExit("no shopper has both training history and test items: nothing to score")
    if not valid.users:
        raise SystemExit(
            "the validation cut (the last 20% of the training period) has no shopper with "
            "history before it and items after it: too little training data to choose on"
        )
    ctx = _load_stages(ns, data, Context(data, catalog, outside))
    users = sample(held.users, ns.users, ns.seed)
    valid_users = sample(valid.users, ns.users, ns.seed)
    scope = (
        f"all {len(users)} eligible test shoppers"
        if len(users) == len(held.users)
        else f"a SAMPLE of {len(users)} of {len(held.users)} eligible test shoppers "
        f"(--users {ns.users}, seed {ns.seed}: a smoke run, not a result)"
    )
    print(
        f"{scope}; {len(valid_users)} validation shoppers; {catalog_note}; tuning peers ...",
        flush=True,
    )
    lists, chosen = peer_lists(ns, held.before, valid, valid_users, users, catalog)
    validation = {name: c["validation_ndcg@10"] for name, c in chosen.items()}
    if ns.methods != "peers":
        print(f"  scoring the pipeline ({ns.methods}) ...", flush=True)
        lists.update(pipeline_lists(ns, ctx, users, held.histories))
        if ns.validate_pipeline:
            on_valid = pipeline_lists(ns, ctx, valid_users, valid.histories)
            truth_v = {u: valid.truth[u] for u in valid_users}
            for name, per_user_v in on_valid.items():
                validation[name] = float(np.mean(per_user(per_user_v, truth_v, valid_users)))
    title_vec = dict(
        zip(catalog, title_embeddings([it.title for it in catalog.values()]), strict=True)
    )
    served_choice = None
    served_names: list[str] = []
    if ns.served:
        cuts = validation_cuts(
            data,
            held,
            valid,
            valid_users,
            outside,
            ns.served_validation_cuts,
            users_limit=ns.users,
            seed=ns.seed,
            cut_catalog=ns.catalog == "cut",
            model_seeds=[ns.seed + i for i in range(ns.served_seeds)],
        )
        served, served_val, served_choice = served_rows(
            data,
            held,
            cuts,
            users,
            outside,
            title_vec,
            candidates=ns.candidates,
            tradeoffs=ns.tradeoffs,
            ltr=ns.served_ltr,
            seed=ns.seed,
            k=max(KS),
            knee_tolerance=ns.knee_tolerance,
            bert_steps=ns.served_bert_steps,
            bert_layers=ns.served_bert_layers,
        )
        lists.update(served)
        validation.update(served_val)
        served_names = list(served)
    blends = [f"+ BERT blend({w:g})" for w in ns.blend_weights]
    scored = [b for b in blends if b in validation]
    # The blend weight the validation cut prefers (only with --validate-pipeline).
    chosen_blend = max(scored, key=lambda b: validation[b]) if scored else None

    n_train_users = len({x.user_id for x in held.before})
    train_users: dict[str, set[str]] = {}
    for x in held.before:
        train_users.setdefault(x.item_id, set()).add(x.user_id)
    share = {i: len(u) / n_train_users for i, u in train_users.items()}
    category = {i: it.leaf_category for i, it in catalog.items()}
    paths = {i: it.category_path for i, it in catalog.items()}
    truth = {u: held.truth[u] for u in users}
    rows: list[dict[str, Any]] = []
    per_shopper: dict[str, np.ndarray] = {}
    for name, per_user_lists in lists.items():
        row: dict[str, Any] = {"method": name, "validation_ndcg@10": validation.get(name)}
        row.update(metrics.evaluate_lists(per_user_lists, truth, KS))
        row.update(_beyond_accuracy(per_user_lists, title_vec, category, share, len(catalog)))
        row["near_dup@10"] = float(
            np.mean([metrics.near_duplicates(r, paths, 10) for r in per_user_lists.values()])
        )
        if name in chosen:
            row["params"] = describe(chosen[name]["params"])
        per_shopper[name] = per_user(per_user_lists, truth, users)
        rows.append(row)
    # The best baseline is chosen on validation, like everything else.
    best = max(chosen, key=lambda name: chosen[name]["validation_ndcg@10"])
    reference = "retrieval" if "retrieval" in lists else None
    compare(rows, per_shopper, reference, "vs_retrieval", resamples=ns.resamples, seed=ns.seed)
    compare(rows, per_shopper, best, "vs_best_baseline", resamples=ns.resamples, seed=ns.seed)
    if served_choice:
        # The served default against every other row, paired over the same shoppers.
        default = served_choice["default"]
        served_choice["default_minus"] = {
            name: asdict(
                paired_bootstrap(per_shopper[default], values, resamples=ns.resamples, seed=ns.seed)
            )
            for name, values in per_shopper.items()
            if name != default
        }
    seeds = None
    if ns.seed_check:
        print(f"  seed check: {ns.seed_check} seeds ...", flush=True)
        seed_list = [ns.seed + i for i in range(ns.seed_check)]
        by_seed = seed_check.seed_rows(
            data,
            held,
            users,
            outside,
            list(catalog),
            chosen,
            served_choice,
            per_shopper,
            seed_list,
            candidates=ns.candidates,
            tradeoffs=ns.tradeoffs,
            k=max(KS),
            threads=ns.threads,
        )
        seeds = seed_check.summary(
            by_seed,
            per_shopper,
            seed_list,
            served_choice["default"] if served_choice else None,
            resamples=ns.resamples,
            seed=ns.seed,
            unrefitted=served_names,
        )
    info = {
        "dataset": data.name,
        "catalog": catalog_note,
        "users": len(users),
        "eligible_users": len(held.users),
        "scope": scope,
        "validation_users": len(valid_users),
        "validation_cut": f"{valid.after[0].timestamp:%Y-%m-%d %H:%M}",
        "test_cut": f"{held.after[0].timestamp:%Y-%m-%d %H:%M}",
        "best_baseline": best,
        "chosen_blend": chosen_blend,
        "served": served_choice,
        "seed_check": seeds,
        "methods": ns.methods,
        "peer_grid": ns.peer_grid,
        "peers": chosen,
        "resamples": ns.resamples,
        "items": len(catalog),
        "train": len(held.before),
        "test": len(held.after),
        "retrieval": (ctx.retrieval.version or str(ns.retrieval_dir)) if ctx.retrieval else None,
        "ranker": ctx.ranker.version if ctx.ranker else None,
        "seconds": time.perf_counter() - t0,
    }
    return rows, info


COLUMNS = [
    ("ndcg@10", "NDCG@10"),
    ("recall@10", "R@10"),
    ("precision@10", "P@10"),
    ("hit_rate@10", "HR@10"),
    ("mrr@10", "MRR@10"),
    ("ndcg@50", "NDCG@50"),
    ("recall@50", "R@50"),
    ("hit_rate@50", "HR@50"),
    ("coverage@10", "cov@10"),
    ("ild@10", "ILD@10"),
    ("catcov@10", "catcov@10"),
    ("near_dup@10", "near-dup@10"),
    ("novelty@10", "novelty@10"),
]


def _ci(value: dict[str, float] | None) -> str:
    if value is None:
        return "—"
    return f"{value['mean']:+.4f} [{value['low']:+.4f}, {value['high']:+.4f}]"


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table: validation NDCG@10 (what choices were made on), test NDCG@10 and its
    paired 95% CIs of the difference to retrieval order and to the best baseline, the rest."""
    labels = ["NDCG@10", "Δ vs retrieval [95% CI]", "Δ vs best baseline [95% CI]", "val NDCG@10"]
    rest = COLUMNS[1:]
    head = "| method | " + " | ".join(labels + [label for _, label in rest]) + " |"
    rule = "|---|" + "---:|" * (len(labels) + len(rest))
    body = []
    for r in rows:
        val = r.get("validation_ndcg@10")
        cells = [
            f"{r['ndcg@10']:.4f}",
            _ci(r.get("vs_retrieval")),
            _ci(r.get("vs_best_baseline")),
            "—" if val is None else f"{val:.4f}",
            *(f"{r[key]:.4f}" for key, _ in rest),
        ]
        body.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])


def choices(info: dict[str, Any]) -> str:
    """The peers' hyperparameters chosen on the validation cut, as a Markdown table."""
    lines = ["| peer | chosen on validation | val NDCG@10 | grid points |", "|---|---|---:|---:|"]
    for name, c in info["peers"].items():
        params = describe(c["params"]) or "(none)"
        lines.append(f"| {name} | {params} | {c['validation_ndcg@10']:.4f} | {c['grid_points']} |")
    return "\n".join(lines)


def served_table(info: dict[str, Any]) -> str:
    """The served path's choices on validation (every cut, and pooled) and its default
    against every other row on test."""
    served = info["served"]
    val_ndcg, val_ild = served["validation_ndcg@10"], served["validation_ild@10"]
    cuts = served.get("validation_cuts", [])
    head = "".join(f" cut {c['cut']} ({c['shoppers']}) |" for c in cuts)
    lines = [
        f"| served row |{head} pooled val NDCG@10 | pooled val ILD@10 |",
        "|---|" + "---:|" * (len(cuts) + 2),
    ]
    for name, v in val_ndcg.items():
        by_cut = "".join(
            f" {c['validation_ndcg@10'][name]:.4f} |" if name in c["validation_ndcg@10"] else " — |"
            for c in cuts
        )
        ild = f"{val_ild[name]:.4f} |" if name in val_ild else "— |"
        default = " (default)" if name == served["default"] else ""
        lines.append(f"| {name}{default} |{by_cut} {v:.4f} | {ild}")
    lines += [
        "",
        f"| test: {served['default']} minus | Δ NDCG@10 [95% CI] |",
        "|---|---:|",
        *(f"| {name} | {_ci(d)} |" for name, d in served["default_minus"].items()),
    ]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["ild@10"], r["ndcg@10"])
        ax.annotate(
            r["method"],
            (r["ild@10"], r["ndcg@10"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("ILD@10 (MiniLM title embeddings)")
    ax.set_ylabel("NDCG@10")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of scripts/evaluate.py, checked."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_data_arguments(p, default="online-retail")
    p.add_argument(
        "--catalog",
        choices=CATALOGS,
        default="cut",
        help="cut: the items known at the split's time cut (default); full: every item",
    )
    p.add_argument(
        "--methods",
        choices=METHODS,
        default="all",
        help="all: peers and every pipeline stage (needs both artefacts); retrieval: peers and "
        "retrieval order (needs the retrieval artefact); peers: the peers only (no artefact)",
    )
    p.add_argument("--retrieval-dir", default="var/models/retrieval")
    p.add_argument("--ranker-dir", default="var/models/ranker")
    p.add_argument(
        "--users",
        type=int,
        default=0,
        help="0 (default): every eligible shopper. N > 0: a seeded sample of N test (and N "
        "validation) shoppers, for smoke runs only; the table says it is a sample.",
    )
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--tradeoffs", default="0.25,0.5,0.75")
    p.add_argument(
        "--ranker-weight",
        type=float,
        default=OrchestratorSettings.model_fields["ranker_weight"].default,
        help="The blend the diversified rows start from, as the orchestrator's "
        "RECSYS_ORCHESTRATOR_RANKER_WEIGHT (default: the service default).",
    )
    p.add_argument(
        "--blend-weights",
        default="0.5",
        help="Also rank by w * z(BERT) + (1 - w) * z(retrieval score) for each w "
        "(services.orchestrator.blend, the orchestrator's RANKER_WEIGHT); '' for none.",
    )
    p.add_argument(
        "--validate-pipeline",
        action="store_true",
        help="Also score the pipeline rows on the validation cut (their val NDCG@10 column), "
        "to choose a blend weight there. The artefacts were trained on the whole training "
        "period, validation included, so those figures are optimistic.",
    )
    p.add_argument(
        "--served",
        action="store_true",
        help="Also score the served path (offline.evaluation.served): the retrieval "
        "service's fused candidates, the learned ranking model, the reranker at each "
        "--tradeoffs, each trained before the cut it is scored after; the served default is "
        "chosen on validation. Needs no artefact.",
    )
    p.add_argument(
        "--no-served-ltr",
        dest="served_ltr",
        action="store_false",
        help="Leave the learned ranking model out of the served rows.",
    )
    p.add_argument(
        "--served-bert-steps",
        type=int,
        default=0,
        metavar="N",
        help="Also a served row whose learned ranking model has the cross-encoder's score: "
        "the cross-encoder is fine-tuned N steps in the run before each cut's rolling cuts "
        "(0, the default: no such row; ~5 minutes per 1,000 steps on 2 CPU cores, and it "
        "scores every candidate of every shopper, in fp32 on OpenVINO where installed).",
    )
    p.add_argument(
        "--served-bert-layers",
        type=int,
        default=-1,
        metavar="L",
        help="With --served-bert-steps: tune the top L encoder layers (-1, the default and the "
        "recipe chosen on validation: all; 2 is 2.5x cheaper on CPU).",
    )
    p.add_argument(
        "--served-validation-cuts",
        default=",".join(f"{q:g}" for q in EARLIER_VALIDATION_CUTS),
        metavar="Q,...",
        help="Earlier cuts inside the training period (its event quantiles) that the served "
        "choices are also made on, each scored on the same 20%% window as the validation cut "
        "and with its own models; the shoppers of every cut are pooled (default "
        "%(default)s; empty: the validation cut alone).",
    )
    p.add_argument(
        "--served-seeds",
        type=int,
        default=1,
        metavar="N",
        help="Train each validation cut's served models with N seeds (--seed, --seed + 1, "
        "...) and pool them too, so the served choices do not rest on one draw of the "
        "training randomness (default 1: --seed alone). The test rows use --seed.",
    )
    p.add_argument(
        "--knee-tolerance",
        type=float,
        default=KNEE_TOLERANCE,
        help="The served default's diversification may cost at most this share of the "
        "validation NDCG@10 (default %(default)s).",
    )
    p.add_argument(
        "--peer-grid",
        choices=("full", "smoke"),
        default="full",
        help="full: the grids of offline.evaluation.peers.GRIDS; smoke: one or two points per "
        "peer, for tests",
    )
    p.add_argument("--resamples", type=int, default=1000, help="Bootstrap resamples per CI.")
    p.add_argument("--threads", type=int, default=1, help="Threads of the implicit models.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--seed-check",
        type=int,
        default=0,
        metavar="N",
        help="Refit every seeded row (ALS, BPR, the served ranking and default) with N seeds "
        "(--seed, --seed + 1, ...) on the whole training period and report the spread and the "
        "served default's seed-mean differences (offline.evaluation.seed_check); 0 (default): "
        "off. Chooses nothing.",
    )
    p.add_argument("--record", type=Path, default=None, help="Append the table to this file.")
    p.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="PNG path of the NDCG-vs-ILD plot; default docs/figures/ with --record, none without.",
    )
    p.add_argument("--json", type=Path, default=None, help="Write the raw figures as JSON.")
    ns = p.parse_args(argv)
    ns.tradeoffs = [float(t) for t in ns.tradeoffs.split(",") if t]
    ns.blend_weights = [float(w) for w in ns.blend_weights.split(",") if w]
    ns.served_validation_cuts = [float(q) for q in ns.served_validation_cuts.split(",") if q]
    if any(not 0.0 < q < VALIDATION_FRACTION for q in ns.served_validation_cuts):
        p.error(f"--served-validation-cuts must be in (0, {VALIDATION_FRACTION:g})")
    if any(not 0.0 <= w <= 1.0 for w in [*ns.blend_weights, ns.ranker_weight]):
        p.error("blend weights must be in [0, 1]")
    if ns.users < 0 or ns.candidates < max(KS):
        p.error(f"--users must be >= 0 (0: all) and --candidates >= {max(KS)}")
    if any(not 0.0 <= t <= 1.0 for t in ns.tradeoffs):
        p.error("trade-offs must be in [0, 1]")
    if not 0.0 <= ns.knee_tolerance < 1.0:
        p.error("--knee-tolerance must be in [0, 1)")
    if ns.served_bert_steps < 0 or (ns.served_bert_steps and not (ns.served and ns.served_ltr)):
        p.error("--served-bert-steps needs --served with its learned ranking model, and N >= 0")
    if ns.served_seeds < 1:
        p.error("--served-seeds must be >= 1")
    if ns.seed_check < 0 or ns.seed_check == 1:
        p.error("--seed-check must be 0 (off) or at least 2 seeds")
    if ns.seed_check and ns.served_bert_steps:
        p.error("--seed-check does not refit the cross-encoder feature (--served-bert-steps)")
    if ns.resamples < 100 or ns.threads < 1:
        p.error("--resamples must be >= 100 and --threads >= 1")
    return ns


def figure_path(figure: Path | None, record: Path | None, root: Path, dataset: str) -> Path | None:
    """Where the NDCG-vs-ILD plot goes: ``--figure``, else docs/figures/ beside a recorded run.

    An unrecorded run writes no figure unless asked: the docs' figures belong to the runs the
    docs record, and an exploratory rerun must not overwrite them."""
    if figure is not None:
        return figure
    if record is not None:
        return root / "docs" / "figures" / f"evaluation_{dataset}.png"
    return None


def main(argv: list[str] | None = None, *, root: Path | None = None) -> int:
    """``root``: the checkout whose docs/figures/ gets the figure (default the working dir)."""
    root = root or Path.cwd()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ns = parse_args(argv)
    if ns.json:
        # Made before the run's minutes of work, so a bad path fails at once.
        ns.json.parent.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows, info = run(ns)
    text = table(rows)
    peers_text = choices(info)
    note = (
        f"{info['scope']}; {info['catalog']}; test from {info['test_cut']}, validation cut "
        f"{info['validation_cut']} ({info['validation_users']} validation shoppers); best "
        f"baseline on validation: {info['best_baseline']}; CIs: paired bootstrap over "
        f"shoppers, {info['resamples']} resamples, seed {ns.seed}"
    )
    if info["chosen_blend"]:
        note += f"; blend chosen on validation: {info['chosen_blend']} (optimistic artefacts)"
    if info["served"]:
        served_cuts = info["served"].get("validation_cuts", [])
        seeds_used = list(dict.fromkeys(c.get("seed", ns.seed) for c in served_cuts))
        note += (
            f"; served default chosen on validation: **{info['served']['default']}** "
            f"(ranking {info['served']['ranking']}, knee tolerance "
            f"{info['served']['knee_tolerance']:g}, on the validation cuts "
            + " + ".join(dict.fromkeys(c["cut"].split()[0] for c in served_cuts))
            + " pooled"
            + (
                ", models with seeds " + ", ".join(str(s) for s in seeds_used)
                if len(seeds_used) > 1
                else ""
            )
            + (
                f", cross-encoder feature trained {info['served']['bert_steps']} steps, "
                + (
                    "all layers"
                    if info["served"].get("bert_layers", -1) < 0
                    else f"top {info['served']['bert_layers']} layers"
                )
                if info["served"].get("bert_steps")
                else ""
            )
            + ")"
        )
    print(note)
    print(text)
    print(peers_text)
    served_text = served_table(info) if info["served"] else ""
    if served_text:
        print(served_text)
    seeds_text = seed_check.table(info["seed_check"]) if info["seed_check"] else ""
    if seeds_text:
        print(seeds_text)
    print(json.dumps({k: v for k, v in info.items() if k != "peers"}))
    figure = figure_path(ns.figure, ns.record, root, info["dataset"])
    if figure is not None:
        plot(rows, figure, f"{info['dataset']}: relevance vs diversity, {info['users']} users")
        print(f"figure: {figure}")
    if ns.json:
        ns.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    if ns.record:
        assert figure is not None  # a recorded run always gets its figure
        cmd = "python scripts/evaluate.py " + " ".join(argv if argv is not None else sys.argv[1:])
        stages = ""
        if info["retrieval"]:
            stages += f", {ns.candidates} retrieval candidates, retrieval `{info['retrieval']}`"
        if info["ranker"]:
            stages += f", ranker `{info['ranker']}`"
        with ns.record.open("a") as f:
            f.write(
                f"\n### {info['dataset']}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
                f"{platform.machine()} CPU ({os.cpu_count()} cores)\n\n"
                f"Command: `{cmd.strip()}`; {note}{stages}; {info['seconds']:.0f} s.\n\n"
                f"{text}\n\nPeers' hyperparameters (chosen on the validation cut, then refitted "
                f"on the whole training period):\n\n{peers_text}\n\n"
                + (
                    f"Served path (offline.evaluation.served), chosen on validation:\n\n"
                    f"{served_text}\n\n"
                    if served_text
                    else ""
                )
                + (
                    f"Seed check (offline.evaluation.seed_check; the seeded rows refitted with "
                    f"{len(info['seed_check']['seeds'])} seeds, chooses nothing):\n\n"
                    f"{seeds_text}\n\n"
                    if seeds_text
                    else ""
                )
                + f"![NDCG vs ILD](figures/{figure.name})\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
