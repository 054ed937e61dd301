"""Relevance-diversity curves of the reranker as the trade-off goes 0..1, for DPP and MMR.

    OPENBLAS_NUM_THREADS=1 python scripts/diversity_curves.py [--source auto|retrieval|minilm]
        [--data PATH|online-retail] [--taxonomy-data PATH|instacart]

--data is the temporal dataset of (a) (default the Online Retail sample), --taxonomy-data the
dataset with a real category tree of (b) (default the Instacart sample); either is a folder in
the data format (docs/data.md) or a built-in name.

(a) Online Retail (UCI sample), global temporal split at the 80% time quantile: per user, the
    training purchases are the history and the test purchases not already in it are the truth.
    Candidates: the top --candidates items of the catalog for the user, never a history item.
    NDCG@k (metrics.ndcg_at_k), ILD@k over the embeddings the reranker saw
    (metrics.intra_list_diversity), novelty@k (metrics.novelty, popularity = share of training
    users who bought the item, add-one smoothed so never-bought items count).
(b) Instacart sample: no temporal split (see its README), so only category coverage@k over the
    real taxonomy (aisles and departments; metrics.category_coverage over the categories present
    among the user's candidates) and ILD@k. The history is a user's baskets; candidates exclude
    it. The reranker sees the aisle as the category (S blends category similarity in; no cap).
(c) Only when the LATEST retrieval artefact was trained on the embedded synthetic dataset: the
    same protocol as (a) on that dataset, with the artefact's candidates and vectors, plus
    category coverage@k over its leaf categories (given to the reranker).

Candidates and relevance: with --source retrieval (and by default when var/models/retrieval/
LATEST exists and was trained on Online Retail) the two-tower retrieval artefact gives the user
vector, the FAISS top-N and inner-product relevance, and its item vectors are the embeddings.
Otherwise (and always for Instacart) all-MiniLM-L6-v2 title embeddings (cached under var/) are
the embeddings and relevance is the cosine to the mean of the user's history embeddings.
Writes docs/figures/diversity_{online_retail,instacart,synthetic}.png and the tables between
the markers in docs/reranker.md; prints the tables too.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; must precede the pyplot import
import matplotlib.pyplot as plt

from services.reranker.rerank import Method, RerankParams, rerank
from shared import metrics
from shared.data import temporal_split
from shared.data.datasets import add_data_arguments, data_from_args, load_data
from shared.data.types import Dataset, Interaction

DOC = Path("docs/reranker.md")
FIGURES = Path("docs/figures")
RETRIEVAL_ROOT = Path("var/models/retrieval")
TITLE_CACHE = Path("var/cache/retrieval/titles")
START, END = "<!-- diversity-curves:start -->", "<!-- diversity-curves:end -->"


@dataclass
class UserCase:
    """One user's candidates (catalog ids, relevance, embedding rows) and held-out truth."""

    items: list[str]
    relevance: np.ndarray
    embeddings: np.ndarray
    truth: set[str]


def unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def title_vectors(ds: Dataset, ids: Sequence[str]) -> np.ndarray:
    from offline.retrieval.text import title_embeddings

    return title_embeddings([ds.items[i].title for i in ids], cache_dir=TITLE_CACHE)


def text_candidates(
    ids: list[str],
    vectors: np.ndarray,
    histories: dict[str, list[str]],
    truth: dict[str, set[str]],
    n: int,
) -> list[UserCase]:
    """Relevance = cosine to the mean history embedding; the top ``n`` non-history items."""
    row = {item: i for i, item in enumerate(ids)}
    cases = []
    for user, hist in histories.items():
        rows = [row[i] for i in hist if i in row]
        if not rows:
            continue
        profile = unit(vectors[rows].mean(axis=0))
        scores = vectors @ profile
        scores[rows] = -np.inf
        top = np.argsort(-scores, kind="stable")[:n]
        cases.append(
            UserCase([ids[i] for i in top], scores[top], vectors[top], truth.get(user, set()))
        )
    return cases


def retrieval_candidates(
    histories: dict[str, list[str]], truth: dict[str, set[str]], n: int
) -> tuple[list[UserCase], str]:
    from services.retrieval.index import build_index
    from shared.artefacts.retrieval import ColdStartError, load_artefact, resolve_version

    artefact = load_artefact(resolve_version(RETRIEVAL_ROOT))
    index = build_index(artefact)
    cases = []
    for user, hist in histories.items():
        try:
            vector = artefact.user_vector(list(reversed(hist)))  # most recent first
        except ColdStartError:
            continue
        found = index.search(vector, n, exclude=set(hist))
        # Every item the index returns is a row of the artefact it was built from.
        rows = [r for item, _ in found if (r := artefact.row(item)) is not None]
        cases.append(
            UserCase(
                [item for item, _ in found],
                np.array([score for _, score in found]),
                artefact.item_vectors[rows],
                truth.get(user, set()),
            )
        )
    return cases, f"retrieval artefact {artefact.version}"


def retrieval_dataset() -> str:
    """The dataset the LATEST retrieval artefact was trained on, or "" when there is none."""
    latest = RETRIEVAL_ROOT / "LATEST"
    if not latest.exists():
        return ""
    version = latest.read_text().strip()
    meta = json.loads((RETRIEVAL_ROOT / version / "meta.json").read_text())
    return str(meta.get("dataset", "")).lower()


def sample(users: list[str], limit: int, seed: int) -> list[str]:
    if limit <= 0 or len(users) <= limit:
        return users
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(users, size=limit, replace=False).tolist())


def curve(
    cases: list[UserCase],
    k: int,
    tradeoffs: list[float],
    evaluate: Callable[[UserCase, list[str]], dict[str, float]],
    categories: Callable[[UserCase], list[str] | None] = lambda c: None,
) -> list[dict[str, float | str]]:
    """One row per (method, trade-off): means of ``evaluate`` over users, and the wall time per
    user (reranking plus metrics)."""
    if not cases:
        raise SystemExit("no user has candidates (does the retrieval artefact know these items?)")
    rows: list[dict[str, float | str]] = []
    for method in (Method.DPP, Method.MMR):
        for t in tradeoffs:
            values: dict[str, list[float]] = {}
            start = time.perf_counter()
            for case in cases:
                params = RerankParams(k=k, method=method, tradeoff=t)
                chosen = rerank(case.relevance, case.embeddings, categories(case), params)
                for key, value in evaluate(case, [case.items[i] for i in chosen.indices]).items():
                    values.setdefault(key, []).append(value)
            elapsed = time.perf_counter() - start
            row: dict[str, float | str] = {"method": method.value, "tradeoff": t}
            for key, vals in values.items():
                row[key] = float(np.mean(vals))
                row[f"{key}_se"] = float(np.std(vals, ddof=1) / np.sqrt(len(vals)))
            row["ms_per_list"] = 1e3 * elapsed / len(cases)
            rows.append(row)
    return rows


def split_histories(
    ds: Dataset,
) -> tuple[list[Interaction], dict[str, list[str]], dict[str, set[str]]]:
    """Training interactions, each user's distinct training items (oldest first), and the
    test items each user had not bought before the cut."""
    train, test = temporal_split(ds, 0.8)
    histories: dict[str, list[str]] = {}
    for x in train:
        hist = histories.setdefault(x.user_id, [])
        if x.item_id not in hist:
            hist.append(x.item_id)
    truth: dict[str, set[str]] = {}
    for x in test:
        if x.user_id in histories and x.item_id not in histories[x.user_id]:
            truth.setdefault(x.user_id, set()).add(x.item_id)
    return train, histories, truth


def online_retail_curve(args: argparse.Namespace) -> tuple[list[dict[str, float | str]], str]:
    ds = data_from_args(args)
    train, histories, truth = split_histories(ds)
    users = sample(sorted(truth), args.max_users, args.seed)
    histories = {u: histories[u] for u in users}
    n_train_users = len({x.user_id for x in train})
    item_users: dict[str, set[str]] = {}
    for x in train:
        item_users.setdefault(x.item_id, set()).add(x.user_id)
    popularity = {
        item: (len(item_users.get(item, ())) + 1) / (n_train_users + 1) for item in ds.items
    }
    use_retrieval = args.source == "retrieval" or (
        args.source == "auto" and retrieval_dataset() == ds.name.lower()
    )
    if use_retrieval:
        cases, source = retrieval_candidates(histories, truth, args.candidates)
    else:
        ids = sorted(ds.items)
        cases = text_candidates(ids, title_vectors(ds, ids), histories, truth, args.candidates)
        source = "all-MiniLM-L6-v2 title embeddings, cosine to the mean history embedding"
    vectors: dict[str, np.ndarray] = {}
    for case in cases:
        vectors.update(zip(case.items, case.embeddings, strict=True))

    def evaluate(case: UserCase, ranked: list[str]) -> dict[str, float]:
        return {
            "ndcg": metrics.ndcg_at_k(ranked, case.truth, args.k),
            "ild": metrics.intra_list_diversity(ranked[: args.k], vectors),
            "novelty": metrics.novelty(ranked, popularity, args.k),
        }

    rows = curve(cases, args.k, args.tradeoffs, evaluate)
    note = (
        f"Online Retail sample, temporal split 80/20 (train before the cut, test after); "
        f"{len(cases)} users with a training history and at least one new test item"
        f"{' (sampled)' if args.max_users and len(truth) > args.max_users else ''}; "
        f"{args.candidates} candidates per user from: {source}."
    )
    return rows, note


def instacart_curve(args: argparse.Namespace) -> tuple[list[dict[str, float | str]], str]:
    ds = load_data(args.taxonomy_data, skip_bad_rows=args.skip_bad_rows)
    histories: dict[str, list[str]] = {}
    for x in ds.interactions:
        hist = histories.setdefault(x.user_id, [])
        if x.item_id not in hist:
            hist.append(x.item_id)
    users = sample(
        sorted(u for u, h in histories.items() if len(h) >= 2), args.instacart_users, args.seed
    )
    histories = {u: histories[u] for u in users}
    ids = sorted(ds.items)
    cases = text_candidates(ids, title_vectors(ds, ids), histories, {}, args.candidates)
    aisle = {i: item.leaf_category for i, item in ds.items.items()}
    department = {i: item.top_category for i, item in ds.items.items()}

    def evaluate(case: UserCase, ranked: list[str]) -> dict[str, float]:
        aisles = len({aisle[i] for i in case.items})
        departments = len({department[i] for i in case.items})
        return {
            "aisle_cov": metrics.category_coverage(ranked, aisle, args.k, aisles),
            "dept_cov": metrics.category_coverage(ranked, department, args.k, departments),
            "ild": metrics.intra_list_diversity(
                ranked[: args.k], dict(zip(case.items, case.embeddings, strict=True))
            ),
        }

    rows = curve(cases, args.k, args.tradeoffs, evaluate, lambda c: [aisle[i] for i in c.items])
    note = (
        f"Instacart sample, {len(cases)} users with at least 2 distinct products"
        f"{' (sampled)' if args.instacart_users and len(users) >= args.instacart_users else ''}; "
        f"{args.candidates} candidates per user from all-MiniLM-L6-v2 title embeddings (cosine "
        f"to the mean history embedding); the aisle is the category given to the reranker."
    )
    return rows, note


def synthetic_curve(args: argparse.Namespace) -> tuple[list[dict[str, float | str]], str] | None:
    """(c) The embedded synthetic dataset with the two-tower retrieval artefact trained on it,
    when that is the LATEST artefact: real retrieval candidates and synthetic leaf categories."""
    if args.source == "minilm" or retrieval_dataset() != "synthetic":
        return None
    ds = load_data("synthetic")
    _, histories, truth = split_histories(ds)
    histories = {u: histories[u] for u in sorted(truth)}
    cases, source = retrieval_candidates(histories, truth, args.candidates)
    leaf = {i: item.leaf_category for i, item in ds.items.items()}
    vectors: dict[str, np.ndarray] = {}
    for case in cases:
        vectors.update(zip(case.items, case.embeddings, strict=True))

    def evaluate(case: UserCase, ranked: list[str]) -> dict[str, float]:
        available = len({leaf[i] for i in case.items})
        return {
            "ndcg": metrics.ndcg_at_k(ranked, case.truth, args.k),
            "ild": metrics.intra_list_diversity(ranked[: args.k], vectors),
            "cat_cov": metrics.category_coverage(ranked, leaf, args.k, available),
        }

    rows = curve(cases, args.k, args.tradeoffs, evaluate, lambda c: [leaf[i] for i in c.items])
    note = (
        f"Synthetic dataset (shared.data.synthetic.generate() defaults), temporal split 80/20, "
        f"{len(cases)} users with a new test item; {args.candidates} candidates per user from the "
        f"{source} (FAISS top-N, inner-product relevance, its 64-d item vectors as embeddings); "
        "the leaf category is given to the reranker."
    )
    return rows, note


def plot_synthetic(rows: list[dict[str, float | str]], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, marker in (("dpp", "o"), ("mmr", "s")):
        sel = [r for r in rows if r["method"] == method]
        left.plot(
            [float(r["ild"]) for r in sel],
            [float(r["ndcg"]) for r in sel],
            marker=marker,
            label=method.upper(),
        )
        right.plot(
            [float(r["tradeoff"]) for r in sel],
            [float(r["cat_cov"]) for r in sel],
            marker=marker,
            label=method.upper(),
        )
    left.set(
        xlabel="ILD@10 (retrieval vectors)",
        ylabel="NDCG@10",
        title="Synthetic: relevance vs diversity",
    )
    right.set(xlabel="trade-off", ylabel="category coverage@10", title="Synthetic: leaf categories")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows: list[dict[str, float | str]], columns: list[tuple[str, str]]) -> str:
    head = "| method | trade-off | " + " | ".join(title for _, title in columns) + " | ms/user |"
    rule = "|:---|---:|" + "---:|" * (len(columns) + 1)
    body = [
        f"| {r['method']} | {float(r['tradeoff']):.1f} | "
        + " | ".join(f"{float(r[key]):.4f} ± {float(r[key + '_se']):.4f}" for key, _ in columns)
        + f" | {float(r['ms_per_list']):.2f} |"
        for r in rows
    ]
    return "\n".join([head, rule, *body])


def plot_online_retail(rows: list[dict[str, float | str]], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, marker in (("dpp", "o"), ("mmr", "s")):
        sel = [r for r in rows if r["method"] == method]
        ild = [float(r["ild"]) for r in sel]
        ndcg = [float(r["ndcg"]) for r in sel]
        left.plot(ild, ndcg, marker=marker, label=method.upper())
        offset = (4, -10) if method == "dpp" else (4, 5)
        for r, x, y in zip(sel, ild, ndcg, strict=True):
            if float(r["tradeoff"]) in (0.0, 0.5, 1.0):
                left.annotate(
                    f"t={float(r['tradeoff']):.1f}",
                    (x, y),
                    xytext=offset,
                    textcoords="offset points",
                    fontsize=7,
                )
        right.plot(
            [float(r["tradeoff"]) for r in sel],
            [float(r["novelty"]) for r in sel],
            marker=marker,
            label=method.upper(),
        )
    left.set(
        xlabel="ILD@10 (embedding)", ylabel="NDCG@10", title="Online Retail: relevance vs diversity"
    )
    right.set(xlabel="trade-off", ylabel="novelty@10 (bits)", title="Online Retail: novelty")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_instacart(rows: list[dict[str, float | str]], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, marker in (("dpp", "o"), ("mmr", "s")):
        sel = [r for r in rows if r["method"] == method]
        ts = [float(r["tradeoff"]) for r in sel]
        left.plot(
            ts,
            [float(r["aisle_cov"]) for r in sel],
            marker=marker,
            label=f"{method.upper()} aisles",
        )
        left.plot(
            ts,
            [float(r["dept_cov"]) for r in sel],
            marker=marker,
            linestyle="--",
            label=f"{method.upper()} departments",
        )
        right.plot(ts, [float(r["ild"]) for r in sel], marker=marker, label=method.upper())
    left.set(
        xlabel="trade-off", ylabel="category coverage@10", title="Instacart: category coverage"
    )
    right.set(
        xlabel="trade-off", ylabel="ILD@10 (embedding)", title="Instacart: intra-list diversity"
    )
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_doc(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    DOC.write_text(f"{before}{START}\n{section}\n{END}{after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["auto", "retrieval", "minilm"], default="auto")
    add_data_arguments(parser, default="online-retail")
    parser.add_argument(
        "--taxonomy-data",
        default="instacart",
        metavar="PATH|NAME",
        help="the dataset of curve (b), with a real category tree (default: instacart)",
    )
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--max-users", type=int, default=0, help="Online Retail; 0 = all")
    parser.add_argument("--instacart-users", type=int, default=1000, help="0 = all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    args.tradeoffs = [round(0.1 * i, 1) for i in range(11)]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    retail_rows, retail_note = online_retail_curve(args)
    insta_rows, insta_note = instacart_curve(args)
    synthetic_result = synthetic_curve(args)
    FIGURES.mkdir(parents=True, exist_ok=True)
    plot_online_retail(retail_rows, FIGURES / "diversity_online_retail.png")
    plot_instacart(insta_rows, FIGURES / "diversity_instacart.png")
    command = "OPENBLAS_NUM_THREADS=1 python scripts/diversity_curves.py " + " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if k in {"source", "candidates", "k", "max_users", "instacart_users", "seed"}
    )
    section = "\n".join(
        [
            f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"2-core x86_64 CPU, no GPU, in {time.perf_counter() - started:.0f} s "
            "(including title encoding when not cached).",
            "Each cell is the mean over users ± its standard error.",
            "",
            f"**(a) {retail_note}**",
            "",
            table(retail_rows, [("ndcg", "NDCG@10"), ("ild", "ILD@10"), ("novelty", "novelty@10")]),
            "",
            "![Online Retail curves](figures/diversity_online_retail.png)",
            "",
            f"**(b) {insta_note}**",
            "",
            table(
                insta_rows,
                [
                    ("aisle_cov", "aisle coverage@10"),
                    ("dept_cov", "department coverage@10"),
                    ("ild", "ILD@10"),
                ],
            ),
            "",
            "![Instacart curves](figures/diversity_instacart.png)",
        ]
    )
    if synthetic_result is not None:
        synth_rows, synth_note = synthetic_result
        plot_synthetic(synth_rows, FIGURES / "diversity_synthetic.png")
        columns = [("ndcg", "NDCG@10"), ("ild", "ILD@10"), ("cat_cov", "category coverage@10")]
        section += "\n".join(
            [
                "",
                "",
                f"**(c) {synth_note}**",
                "",
                table(synth_rows, columns),
                "",
                "![Synthetic curves](figures/diversity_synthetic.png)",
            ]
        )
    print(section)
    if not args.no_doc:
        write_doc(section)


if __name__ == "__main__":
    main()
