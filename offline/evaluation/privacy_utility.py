"""Utility cost of differential privacy for the popularity fallback, on the real Online Retail
split: NDCG@10 of the DP popularity top-10 list at several epsilons.

Protocol: temporal split (shared.data.temporal_split, 80 % train by time); the fallback shows
every user the same list, the 10 items with the highest released popularity, ranked over the
whole catalog, without excluding past purchases (the fallback knows no user). Relevant items
of a test user are the items they bought in the test period; NDCG@10 is averaged over test
users (shared.metrics). Popularity is the number of distinct train users per item with each
user's contribution bounded to their ``k`` most recent items, released by the same OpenDP
mechanisms the gateway uses. OpenDP's CSPRNG cannot be seeded, so each cell is the mean and
standard deviation over independent releases ("runs") instead of fixed seeds.

With --retrieval-dir (a retrieval artefact trained on Online Retail), the full-pipeline
column is filled too, over the same test users and releases: a shopper whose train history
has an indexed item gets the two-tower top 10 (exact FAISS search; the BERT ranker is left
out, it measured no gain over retrieval order, docs/ranker.md); a shopper without one gets the
DP popularity list, as the orchestrator's cold-start path does. The note under the table
gives, for comparison, the same users served retrieval's own cold-start list (the retrieval
artefact's raw training counts, no DP).

    python scripts/privacy_utility.py --runs 20 --write-doc docs/privacy.md \
        --retrieval-dir var/models/retrieval/<online-retail version>
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.privacy_gateway.mechanisms import (
    Mechanism,
    calibrate,
    contribution_bounded_counts,
    release_counts,
)
from shared.data import Interaction, temporal_split
from shared.data.datasets import add_data_arguments, data_from_args
from shared.metrics import ndcg_at_k

EPSILONS = (0.1, 0.5, 1.0, 2.0, 8.0, math.inf)
K = 10
BEGIN = "<!-- privacy-utility:begin -->"
END = "<!-- privacy-utility:end -->"


def top_k(keys: Sequence[str], scores: Sequence[float], k: int = K) -> list[str]:
    """Highest scores first; ties broken by item id so the list is deterministic."""
    order = sorted(range(len(keys)), key=lambda i: (-scores[i], keys[i]))
    return [keys[i] for i in order[:k]]


def mean_ndcg(ranked: list[str], relevant_by_user: dict[str, set[str]]) -> float:
    return statistics.fmean(ndcg_at_k(ranked, rel, K) for rel in relevant_by_user.values())


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def pipeline_ndcg(
    popular: list[str], personal: dict[str, list[str]], relevant: dict[str, set[str]]
) -> float:
    """Mean NDCG@10 when shoppers with a usable history get their own list and the rest the
    (DP) popularity list."""
    return statistics.fmean(
        ndcg_at_k(personal.get(user, popular), rel, K) for user, rel in relevant.items()
    )


def retrieval_lists(
    retrieval_dir: str, train: Sequence[Interaction], users: Iterable[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """(the two-tower top 10 of every user whose train history has an indexed item, the
    artefact's cold-start list)."""
    from offline.retrieval.training import recent_histories
    from services.retrieval.index import build_index
    from shared.artefacts.retrieval import ColdStartError, artefact_dir, load_artefact

    artefact = load_artefact(artefact_dir(retrieval_dir))
    if artefact.meta.get("dataset") != "online-retail":
        raise SystemExit(
            f"the retrieval artefact was trained on {artefact.meta.get('dataset')!r}; train one "
            "with scripts/train_retrieval.py --dataset online-retail"
        )
    index = build_index(artefact, "flat")
    histories = recent_histories(train)
    lists = {}
    for user in users:
        try:
            vector = artefact.user_vector(histories.get(user, []))
        except ColdStartError:
            continue
        lists[user] = [item for item, _ in index.search(vector, K)]
    return lists, artefact.popular_items(K)


def evaluate(
    bound: int,
    runs: int,
    delta: float,
    relevant: dict[str, set[str]],
    keys: list[str],
    train: Sequence[Interaction],
    with_gaussian: bool = True,
    personal: dict[str, list[str]] | None = None,
) -> list[tuple[str, str, str, str]]:
    """One row per epsilon: (epsilon, Laplace cell, Gaussian cell or "", full-pipeline cell
    (Laplace releases) or "")."""
    events = [(x.user_id, x.item_id, x.timestamp) for x in train]
    counts = contribution_bounded_counts(events, keys, bound)
    rows = []
    for eps in EPSILONS:
        cells = []
        pipeline: list[float] = []
        mechanisms = [Mechanism.LAPLACE, Mechanism.GAUSSIAN][: 2 if with_gaussian else 1]
        for mech in mechanisms:
            if math.isinf(eps):
                releases = [top_k(keys, counts)]
            else:
                cal = calibrate(mech, eps, 0.0 if mech is Mechanism.LAPLACE else delta, bound)
                releases = [top_k(keys, release_counts(counts, cal)) for _ in range(runs)]
            cells.append(_cell([mean_ndcg(popular, relevant) for popular in releases]))
            if mech is Mechanism.LAPLACE and personal is not None:
                pipeline = [pipeline_ndcg(popular, personal, relevant) for popular in releases]
        cells.append("")
        rows.append(
            (
                "∞ (no noise)" if math.isinf(eps) else f"{eps:g}",
                cells[0],
                cells[1],
                _cell(pipeline) if pipeline else "",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, default="online-retail")
    parser.add_argument("--runs", type=int, default=20, help="independent releases per cell")
    parser.add_argument("--bound", type=int, default=5, help="per-user contribution bound k")
    parser.add_argument("--sweep", type=int, nargs="*", default=[1, 20, 50], help="other k")
    parser.add_argument("--delta", type=float, default=1e-6, help="delta of the Gaussian")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-list baseline")
    parser.add_argument("--write-doc", help="replace the results block of this Markdown file")
    parser.add_argument(
        "--retrieval-dir",
        help="a retrieval artefact (or root with LATEST) trained on Online Retail: fills the "
        "full-pipeline column",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    dataset = data_from_args(args)
    train, test = temporal_split(dataset)
    relevant: dict[str, set[str]] = defaultdict(set)
    for x in test:
        relevant[x.user_id].add(x.item_id)
    keys = sorted(dataset.items)
    exact: dict[str, int] = defaultdict(int)
    for _, item in {(x.user_id, x.item_id) for x in train}:
        exact[item] += 1
    unbounded = mean_ndcg(top_k(keys, [exact[k] for k in keys]), relevant)

    personal: dict[str, list[str]] | None = None
    cold_list: list[str] = []
    if args.retrieval_dir:
        personal, cold_list = retrieval_lists(args.retrieval_dir, train, relevant)
    main_rows = evaluate(
        args.bound, args.runs, args.delta, relevant, keys, train, personal=personal
    )
    sweep = {
        k: evaluate(k, args.runs, args.delta, relevant, keys, train, with_gaussian=False)
        for k in args.sweep
    }
    rng = random.Random(args.seed)
    chance = statistics.fmean(mean_ndcg(rng.sample(keys, K), relevant) for _ in range(args.runs))
    elapsed = time.monotonic() - started

    lines = [
        BEGIN,
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on a 2-core x86_64 CPU, no GPU "
        f"({platform.python_implementation()} {platform.python_version()}), in {elapsed:.0f} s:",
        "",
        "```",
        "python " + " ".join(["scripts/privacy_utility.py", *(argv or sys.argv[1:])]),
        "```",
        "",
        f"Data: Online Retail sample ({len(dataset.interactions)} clean purchases, "
        f"{len(keys)} items, {len(dataset.users())} customers); temporal split "
        f"{len(train)} train / {len(test)} test purchases, {len(relevant)} test users. "
        f"Popularity fallback: one top-{K} list for everyone. Each cell: mean ± standard "
        f"deviation of NDCG@{K} over {args.runs} independent releases.",
        "",
        f"References: exact popularity without DP and without contribution bounding, "
        f"NDCG@{K} = {unbounded:.4f}; a uniformly random list (seed {args.seed}, mean of "
        f"{args.runs}), NDCG@{K} = {chance:.4f}.",
        "",
        f"Contribution bound k = {args.bound} (the service default):",
        "",
        f"| epsilon | popularity fallback, discrete Laplace | popularity fallback, "
        f"discrete Gaussian (delta = {args.delta:g}) | full pipeline, discrete Laplace |",
        "|---|---|---|---|",
        *(
            f"| {e} | {lap} | {gau} | {full or 'not run (needs --retrieval-dir)'} |"
            for e, lap, gau, full in main_rows
        ),
        "",
        *(
            [
                f"Full pipeline: {len(personal)} of the {len(relevant)} test users have a "
                f"train history with an indexed item and get the two-tower top {K} (the same "
                f"in every release); the other {len(relevant) - len(personal)} get the DP "
                "popularity list, as the orchestrator serves cold-start shoppers. Served "
                "retrieval's own cold-start list instead (the retrieval artefact's raw "
                "training counts, no DP), the same users would score "
                f"NDCG@{K} = {pipeline_ndcg(cold_list, personal, relevant):.4f}.",
                "",
            ]
            if personal is not None
            else []
        ),
        "Other contribution bounds (discrete Laplace):",
        "",
        "| epsilon | " + " | ".join(f"k = {k}" for k in sweep) + " |",
        "|---|" + "---|" * len(sweep),
    ]
    for i, eps_row in enumerate(main_rows):
        lines.append(f"| {eps_row[0]} | " + " | ".join(sweep[k][i][1] for k in sweep) + " |")
    lines.append(END)
    block = "\n".join(lines)
    print(block)
    if args.write_doc:
        path = Path(args.write_doc)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
