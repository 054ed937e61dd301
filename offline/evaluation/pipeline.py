"""Offline evaluation of the whole pipeline, stage by stage, on one temporal split.

    python scripts/evaluate.py --data FOLDER|online-retail|synthetic   # or
    python -m offline.evaluation.pipeline ...
        [--catalog cut|full] [--retrieval-dir DIR] [--ranker-dir DIR] [--users 150]
        [--candidates 100]
        [--tradeoffs 0.25,0.5,0.75] [--record docs/evaluation.md]

Protocol: global temporal split at the 80% time quantile; a shopper's TRAIN history (most
recent first) drives every method; the truth is the set of items the shopper interacted with
in the TEST period; retrieval ranks the evaluation catalog (FAISS, exact): by default the
catalog as known at the cut (items listed, by ``first_seen``, or interacted with before it),
with --catalog full every item of the data, including ones first seen after the cut; the
table says which. Test items outside the catalog stay in the truth, as misses no method can
avoid. Users with both train
history and test items, a seeded sample of --users of them. Compared on the same users:

- popularity           training-period popularity (the fallback list)
- retrieval            two-tower + FAISS order
- + BERT ranker        the top --candidates retrieval candidates ordered by the cross-encoder
- + BERT blend(w)      ordered by w * z(BERT) + (1 - w) * z(retrieval score)
- + DPP(t) / + MMR(t)  the blended relevance at --ranker-weight (the orchestrator's default)
                       diversified at trade-off t (services.reranker)

Metrics (shared.metrics): Precision/Recall/NDCG/HitRate/MRR @10 and @50, item coverage@10,
ILD@10 over MiniLM title embeddings (independent of the retrieval vectors the reranker uses),
category coverage@10 (leaf categories; derived from titles on Online Retail), novelty@10.
Writes a Markdown table (with --record) and a PNG of NDCG@10 against ILD@10 to docs/figures/.
The artefacts must have been trained on the same dataset: scripts/train_retrieval.py and
scripts/train_ranker.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from offline.ranker.training import candidate_text, shopper_context
from offline.retrieval.evaluation import holdout_truth
from offline.retrieval.text import title_embeddings
from services.orchestrator.blend import blend
from services.orchestrator.config import OrchestratorSettings
from services.ranker.model import encode_pairs, load_artefact, score_arrays
from services.reranker.rerank import Method, RerankParams, rerank
from services.retrieval.index import build_index
from shared import metrics
from shared.artefacts.retrieval import ColdStartError, artefact_dir
from shared.artefacts.retrieval import load_artefact as load_retrieval
from shared.data import temporal_split
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import CATALOGS, evaluation_catalog

KS = (10, 50)


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


def run(ns: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    t0 = time.perf_counter()
    data = data_from_args(ns)
    train, test = temporal_split(data, 0.8)
    catalog, catalog_note = evaluation_catalog(data, ns.catalog, 0.8)
    outside = set(data.items) - set(catalog)
    retrieval = load_retrieval(artefact_dir(ns.retrieval_dir))
    _check_dataset(retrieval.meta, data.name, "retrieval")
    ranker = load_artefact(ns.ranker_dir)
    _check_dataset(ranker.meta, data.name, "ranker")
    index = build_index(retrieval, "flat")
    histories, truth = holdout_truth(train, test)
    users = sorted(histories)
    random.Random(ns.seed).shuffle(users)
    users = sorted(users[: ns.users])
    print(f"{len(users)} users, {catalog_note}; scoring with BERT ...", flush=True)

    train_users: dict[str, set[str]] = {}
    for x in train:
        train_users.setdefault(x.item_id, set()).add(x.user_id)
    n_train_users = len({x.user_id for x in train})
    share = {i: len(u) / n_train_users for i, u in train_users.items()}
    category = {i: it.leaf_category for i, it in catalog.items()}
    ids = list(catalog)
    vecs = title_embeddings([catalog[i].title for i in ids])
    title_vec = dict(zip(ids, vecs, strict=True))

    popular = [i for i in retrieval.popular_items(max(KS) + len(outside)) if i in catalog]
    popular = popular[: max(KS)]
    lists: dict[str, dict[str, list[str]]] = {"popularity": {}, "retrieval": {}, "+ BERT": {}}
    for w in ns.blend_weights:
        lists[f"+ BERT blend({w:g})"] = {}
    diversified = [(m, t) for m in (Method.DPP, Method.MMR) for t in ns.tradeoffs]
    stage = "+ BERT" if ns.ranker_weight == 1.0 else f"+ BERT blend({ns.ranker_weight:g})"
    for m, t in diversified:
        lists[f"{stage} + {m.name}({t:g})"] = {}
    for n_done, user in enumerate(users, 1):
        lists["popularity"][user] = popular
        try:
            vector = retrieval.user_vector(histories[user])
            found = index.search(vector, ns.candidates, exclude=outside)
        except ColdStartError:
            popular_cands = retrieval.popular_items(ns.candidates + len(outside))
            found = [(c, -float(r)) for r, c in enumerate(popular_cands)]
        found = [(c, s) for c, s in found if c in catalog][: ns.candidates]
        cands = [c for c, _ in found]
        prior = [s for _, s in found]
        lists["retrieval"][user] = cands
        ctx = shopper_context(histories[user], data.items)
        scores = []
        for start in range(0, len(cands), 64):
            chunk = cands[start : start + 64]
            arrays = encode_pairs(
                ranker.tokenizer,
                [ctx] * len(chunk),
                [candidate_text(data.items[c]) for c in chunk],
                ranker.max_length,
            )
            scores.extend(score_arrays(ranker.model, arrays).tolist())
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
        cats = [data.items[c].top_category for c in cands]
        relevance = blend(rel, prior, ns.ranker_weight)  # what the orchestrator sends
        for m, t in diversified:
            sel = rerank(relevance, emb, cats, RerankParams(k=max(KS), method=m, tradeoff=t))
            lists[f"{stage} + {m.name}({t:g})"][user] = [cands[i] for i in sel.indices]
        if n_done % 25 == 0:
            print(f"  {n_done}/{len(users)} users", flush=True)
    truth_s = {u: truth[u] for u in users}
    rows = []
    for name, per_user in lists.items():
        row: dict[str, Any] = {"method": name}
        row.update(metrics.evaluate_lists(per_user, truth_s, KS))
        row.update(_beyond_accuracy(per_user, title_vec, category, share, len(catalog)))
        rows.append(row)
    info = {
        "dataset": data.name,
        "catalog": catalog_note,
        "users": len(users),
        "items": len(catalog),
        "train": len(train),
        "test": len(test),
        "retrieval": retrieval.version or str(ns.retrieval_dir),
        "ranker": ranker.version,
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
    ("novelty@10", "novelty@10"),
]


def table(rows: list[dict[str, Any]]) -> str:
    head = "| method | " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    body = [
        f"| {r['method']} | " + " | ".join(f"{r[key]:.4f}" for key, _ in COLUMNS) + " |"
        for r in rows
    ]
    return "\n".join([head, rule, *body])


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


def main(argv: list[str] | None = None, *, root: Path | None = None) -> int:
    """``root``: the checkout whose docs/figures/ gets the figure (default the working dir)."""
    root = root or Path.cwd()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
    p.add_argument("--retrieval-dir", default="var/models/retrieval")
    p.add_argument("--ranker-dir", default="var/models/ranker")
    p.add_argument("--users", type=int, default=150)
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", type=Path, default=None, help="Append the table to this file.")
    p.add_argument("--figure", type=Path, default=None, help="PNG path; default docs/figures.")
    p.add_argument("--json", type=Path, default=None, help="Write the raw figures as JSON.")
    ns = p.parse_args(argv)
    ns.tradeoffs = [float(t) for t in ns.tradeoffs.split(",") if t]
    ns.blend_weights = [float(w) for w in ns.blend_weights.split(",") if w]
    if any(not 0.0 <= w <= 1.0 for w in [*ns.blend_weights, ns.ranker_weight]):
        p.error("blend weights must be in [0, 1]")
    if ns.users < 1 or ns.candidates < max(KS):
        p.error(f"--users must be >= 1 and --candidates >= {max(KS)}")
    if any(not 0.0 <= t <= 1.0 for t in ns.tradeoffs):
        p.error("trade-offs must be in [0, 1]")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows, info = run(ns)
    text = table(rows)
    print(text)
    print(json.dumps(info))
    figure = ns.figure or root / "docs" / "figures" / f"evaluation_{info['dataset']}.png"
    plot(rows, figure, f"{info['dataset']}: relevance vs diversity, {info['users']} users")
    if ns.json:
        ns.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2))
    if ns.record:
        cmd = "python scripts/evaluate.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with ns.record.open("a") as f:
            f.write(
                f"\n### {info['dataset']}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
                f"{platform.machine()} CPU ({os.cpu_count()} cores)\n\n"
                f"Command: `{cmd.strip()}`; {info['users']} users, {info['catalog']}, "
                f"{ns.candidates} retrieval candidates, retrieval `{info['retrieval']}`, "
                f"ranker `{info['ranker']}`; {info['seconds']:.0f} s.\n\n{text}\n\n"
                f"![NDCG vs ILD](figures/{figure.name})\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
