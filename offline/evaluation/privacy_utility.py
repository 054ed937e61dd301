"""Utility cost of differential privacy for the popularity fallback, on the real Online Retail
split: NDCG@10 of the DP popularity top-10 list at several epsilons.

Protocol: temporal split (shared.data.temporal_split, 80 % train by time); the fallback shows
every user the same list, the 10 items with the highest released popularity, ranked over the
whole catalog, without excluding past purchases (the fallback knows no user). Relevant items
of a test user are the items they bought in the test period; NDCG@10 is averaged over ALL
test users (shared.metrics). Popularity is the number of distinct users per item, each user's
contribution bounded to their ``k`` most recent items, released by the OpenDP mechanisms the
gateway uses. OpenDP's CSPRNG cannot be seeded, so every figure is over independent releases
("runs"), with a 95 % bootstrap interval that resamples shoppers and runs together; the
relative change against the exact list is paired (the same resampled shoppers on both sides).

Choosing the configuration never reads the test period: the candidates (mechanism x
contribution bound, and DP top-k selection) are scored on a validation cut inside the
training period, counting on the first 80 % of training time and scoring on its last 20 %, at
epsilon 1; the best by validation NDCG@10 is then measured on test, once per epsilon.

With --retrieval-dir (a retrieval artefact trained on Online Retail), the full-pipeline
column is filled too, over the same test users and releases: a shopper whose train history
has an indexed item gets the two-tower top 10 (exact FAISS search; the BERT ranker is left
out, it measured no gain over retrieval order, docs/ranker.md); a shopper without one gets the
DP popularity list, as the orchestrator's cold-start path does.

    python scripts/privacy_utility.py --runs 20 --write-doc docs/privacy.md \
        --retrieval-dir var/models/retrieval/<online-retail version>
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.mechanisms import (
    Mechanism,
    calibrate,
    contribution_bounded_counts,
    noisy_top_k,
    noisy_top_k_scale,
    release_counts,
)
from shared.data import Interaction, temporal_split
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import split_log
from shared.metrics import ndcg_at_k

EPSILONS = (0.1, 0.5, 1.0, 2.0)
VALIDATION_EPSILON = 1.0
BOUNDS = (1, 2, 5, 10, 20)
K = 10
BEGIN = "<!-- privacy-utility:begin -->"
END = "<!-- privacy-utility:end -->"
TARGET = -0.05  # the bar: at most 5 % below the exact list at epsilon 1


@dataclass(frozen=True)
class Candidate:
    """One way to release the popularity list: ``mechanism`` is a Mechanism value (noisy
    counts for the whole catalog, ranked) or "top-k" (DP selection of the K items only);
    ``bound`` is the per-user contribution bound, None for no bound (top-k needs none)."""

    mechanism: str
    bound: int | None

    @property
    def label(self) -> str:
        name = {"laplace": "discrete Laplace", "gaussian": "discrete Gaussian"}.get(
            self.mechanism, f"noisy top-{K} selection (Gumbel)"
        )
        return f"{name}, k = {'none' if self.bound is None else self.bound}"


def candidates() -> list[Candidate]:
    out = [Candidate(m.value, k) for m in Mechanism for k in BOUNDS]
    return [*out, Candidate("top-k", 1), Candidate("top-k", 5), Candidate("top-k", None)]


def top_k(keys: Sequence[str], scores: Sequence[float], k: int = K) -> list[str]:
    """Highest scores first; ties broken by item id so the list is deterministic."""
    order = sorted(range(len(keys)), key=lambda i: (-scores[i], keys[i]))
    return [keys[i] for i in order[:k]]


def counts_for(train: Sequence[Interaction], keys: list[str], bound: int | None) -> list[int]:
    """Distinct users per key, each user bounded to their ``bound`` most recent keys."""
    if bound is None:
        exact: dict[str, int] = defaultdict(int)
        for _, item in {(x.user_id, x.item_id) for x in train}:
            exact[item] += 1
        return [exact[k] for k in keys]
    events = [(x.user_id, x.item_id, x.timestamp) for x in train]
    return contribution_bounded_counts(events, keys, bound)


def releases(
    candidate: Candidate,
    epsilon: float,
    counts: list[int],
    keys: list[str],
    runs: int,
    delta: float,
) -> list[list[str]]:
    """``runs`` independent DP top-K lists (one exact list when epsilon is infinite)."""
    if math.isinf(epsilon):
        return [top_k(keys, counts)]
    if candidate.mechanism == "top-k":
        scale = noisy_top_k_scale(epsilon, K)
        return [[keys[i] for i in noisy_top_k(counts, scale, K)] for _ in range(runs)]
    mech = Mechanism(candidate.mechanism)
    bound = candidate.bound or 1
    cal = calibrate(mech, epsilon, 0.0 if mech is Mechanism.LAPLACE else delta, bound)
    return [top_k(keys, release_counts(counts, cal)) for _ in range(runs)]


def per_user(
    lists: list[list[str]],
    relevant: dict[str, set[str]],
    personal: dict[str, list[str]] | None = None,
) -> np.ndarray:
    """NDCG@K, one row per release, one column per user (in ``relevant``'s order); with
    ``personal``, a user found there gets their own list instead of the release."""
    personal = personal or {}
    return np.array(
        [
            [ndcg_at_k(personal.get(user, popular), rel, K) for user, rel in relevant.items()]
            for popular in lists
        ]
    )


@dataclass(frozen=True)
class Estimate:
    """Mean NDCG and its 95 % bootstrap interval; ``rel`` the paired relative change
    against the reference, with its interval."""

    mean: float
    low: float
    high: float
    rel: float
    rel_low: float
    rel_high: float

    def cell(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"

    def rel_cell(self) -> str:
        return f"{self.rel:+.1%} [{self.rel_low:+.1%}, {self.rel_high:+.1%}]"


def bootstrap(
    scores: np.ndarray, reference: np.ndarray, rng: np.random.Generator, replicates: int
) -> Estimate:
    """Resample shoppers (columns, shared by both sides: paired) and releases (rows)."""
    runs, users = scores.shape
    user_w = rng.multinomial(users, np.full(users, 1 / users), size=replicates)
    run_w = rng.multinomial(runs, np.full(runs, 1 / runs), size=replicates)
    boot = np.einsum("br,ru,bu->b", run_w, scores, user_w) / (runs * users)
    ref = user_w @ reference / users
    rel = boot / ref - 1
    mean = float(scores.mean())
    ref_mean = float(reference.mean())
    return Estimate(
        mean,
        float(np.quantile(boot, 0.025)),
        float(np.quantile(boot, 0.975)),
        mean / ref_mean - 1,
        float(np.quantile(rel, 0.025)),
        float(np.quantile(rel, 0.975)),
    )


def relevant_by_user(period: Iterable[Interaction]) -> dict[str, set[str]]:
    relevant: dict[str, set[str]] = defaultdict(set)
    for x in period:
        relevant[x.user_id].add(x.item_id)
    return dict(relevant)


def retrieval_lists(
    retrieval_dir: str, train: Sequence[Interaction], users: Iterable[str]
) -> dict[str, list[str]]:
    """The two-tower top 10 of every user whose train history has an indexed item."""
    from offline.retrieval.training import recent_histories
    from services.retrieval.index import build_index
    from shared.artefacts.retrieval import ColdStartError, artefact_dir, load_artefact

    artefact = load_artefact(artefact_dir(retrieval_dir))
    if artefact.meta.get("dataset") != "online-retail":
        raise SystemExit(
            f"the retrieval artefact was trained on {artefact.meta.get('dataset')!r}; train one "
            "with scripts/train_retrieval.py --data online-retail"
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
    return lists


def validate(
    cands: list[Candidate],
    train: Sequence[Interaction],
    keys: list[str],
    runs: int,
    delta: float,
    rng: np.random.Generator,
    replicates: int,
) -> tuple[list[tuple[Candidate, Estimate]], float, int]:
    """Every candidate at VALIDATION_EPSILON on the validation cut, best first; with the
    exact (unbounded, un-noised) list's validation NDCG and the number of validation users."""
    counting, pseudo_test = split_log(train)
    relevant = relevant_by_user(pseudo_test)
    exact = per_user([top_k(keys, counts_for(counting, keys, None))], relevant)[0]
    scored = []
    for cand in cands:
        counts = counts_for(counting, keys, cand.bound)
        lists = releases(cand, VALIDATION_EPSILON, counts, keys, runs, delta)
        scored.append((cand, bootstrap(per_user(lists, relevant), exact, rng, replicates)))
    scored.sort(key=lambda ce: -ce[1].mean)
    return scored, float(exact.mean()), len(relevant)


def gateway_default() -> Candidate:
    """What the gateway releases for item popularity when neither the request nor its
    configuration says otherwise (the settings class is the one source of the defaults)."""
    fields = PrivacyGatewaySettings.model_fields
    return Candidate(
        fields["default_mechanism"].default, fields["item_popularity_max_contributions"].default
    )


def choose(scored: list[tuple[Candidate, Estimate]]) -> Candidate:
    """The best validation NDCG among the candidates a default release can use: the bundled
    release client asks with delta 0, so the default must be pure epsilon-DP (the Gaussian and
    the rest are measured for the record)."""
    return next(c for c, _ in scored if c.mechanism == Mechanism.LAPLACE.value)


def _test_rows(
    chosen: Candidate,
    baseline: Candidate,
    train: Sequence[Interaction],
    keys: list[str],
    relevant: dict[str, set[str]],
    exact: np.ndarray,
    personal: dict[str, list[str]] | None,
    runs: int,
    delta: float,
    rng: np.random.Generator,
    replicates: int,
) -> list[str]:
    chosen_counts = counts_for(train, keys, chosen.bound)
    base_counts = counts_for(train, keys, baseline.bound)
    exact_pipeline = per_user([top_k(keys, counts_for(train, keys, None))], relevant, personal)
    rows = []
    for eps in (*EPSILONS, math.inf):
        lists = releases(chosen, eps, chosen_counts, keys, runs, delta)
        fallback = bootstrap(per_user(lists, relevant), exact[0], rng, replicates)
        base = bootstrap(
            per_user(releases(baseline, eps, base_counts, keys, runs, delta), relevant),
            exact[0],
            rng,
            replicates,
        )
        full = "not run (needs --retrieval-dir)"
        if personal is not None:
            scores = per_user(lists, relevant, personal)
            full_est = bootstrap(scores, exact_pipeline[0], rng, replicates)
            full = f"{full_est.cell()} | {full_est.rel_cell()}"
        else:
            full += " | "
        label = "∞ (no noise)" if math.isinf(eps) else f"{eps:g}"
        rows.append(
            f"| {label} | {fallback.cell()} | {fallback.rel_cell()} | {full} | "
            f"{base.cell()} | {base.rel_cell()} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, default="online-retail")
    parser.add_argument("--runs", type=int, default=20, help="independent releases per cell")
    parser.add_argument(
        "--validation-runs",
        type=int,
        default=100,
        help="releases per validation candidate (more than --runs: the choice between close "
        "candidates should not hinge on release noise)",
    )
    parser.add_argument("--delta", type=float, default=1e-6, help="delta of the Gaussian")
    parser.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--write-doc", help="replace the results block of this Markdown file")
    parser.add_argument(
        "--retrieval-dir",
        help="a retrieval artefact (or root with LATEST) trained on Online Retail: fills the "
        "full-pipeline column",
    )
    args = parser.parse_args(argv)
    if args.write_doc:
        # Made before the run, not when its block is written at the end.
        Path(args.write_doc).parent.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    rng = np.random.default_rng(args.seed)
    dataset = data_from_args(args)
    train, test = temporal_split(dataset)
    keys = sorted(dataset.items)

    scored, val_exact, val_users = validate(
        candidates(), train, keys, args.validation_runs, args.delta, rng, args.replicates
    )
    chosen = choose(scored)
    served = gateway_default()
    baseline = Candidate(Mechanism.LAPLACE.value, 5)

    relevant = relevant_by_user(test)
    exact = per_user([top_k(keys, counts_for(train, keys, None))], relevant)
    personal = None
    if args.retrieval_dir:
        personal = retrieval_lists(args.retrieval_dir, train, relevant)
    rows = _test_rows(
        chosen,
        baseline,
        train,
        keys,
        relevant,
        exact,
        personal,
        args.runs,
        args.delta,
        rng,
        args.replicates,
    )
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
        f"Data: {dataset.name} ({len(dataset.interactions)} clean purchases, {len(keys)} items, "
        f"{len(dataset.users())} customers); temporal split {len(train)} train / {len(test)} "
        f"test purchases. Every figure: mean NDCG@{K} over ALL eligible shoppers and "
        f"{args.runs} independent releases, [95 % bootstrap interval] over shoppers and "
        f'releases ({args.replicates} replicates); "vs exact" is the paired relative change '
        f"against the exact list (no DP, no contribution bound) on the same shoppers.",
        "",
        f"**Validation** (choice made here; the test period is not read): counting on the "
        f"first 80 % of training time, scoring the {val_users} shoppers who buy in its last "
        f"20 %; {args.validation_runs} releases per candidate; epsilon = "
        f"{VALIDATION_EPSILON:g}; exact list NDCG@{K} = {val_exact:.4f}.",
        "",
        f"| candidate (epsilon {VALIDATION_EPSILON:g}) | validation NDCG@{K} | vs exact |",
        "|---|---|---|",
        *(f"| {c.label} | {e.cell()} | {e.rel_cell()} |" for c, e in scored),
        "",
        f"Chosen: {chosen.label} (the best pure epsilon-DP candidate; the bundled release "
        f"client asks with delta 0). Gateway default for item popularity: {served.label}"
        + ("." if served == chosen else " — DIFFERENT from the validation choice."),
        "",
        f"**Test** ({len(relevant)} shoppers who buy in the test period; exact list "
        f"NDCG@{K} = {float(exact.mean()):.4f}), chosen configuration {chosen.label}, and "
        f"the previous default ({baseline.label}) for comparison:",
        "",
        "| epsilon | fallback (chosen) | vs exact | full pipeline (chosen) | vs exact pipeline "
        "| fallback (previous default) | vs exact |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *(
            [
                f"Full pipeline: {len(personal)} of the {len(relevant)} test shoppers have a "
                f"train history with an indexed item and get the two-tower top {K} (the same "
                f"in every release); the other {len(relevant) - len(personal)} get the DP "
                'popularity list. "Exact pipeline" serves them the exact list instead.',
            ]
            if personal is not None
            else []
        ),
        END,
    ]
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
