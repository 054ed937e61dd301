"""Training the learned ranking model (LightGBM lambdarank) on a validation cut of the
training period, never on the test period.

    python scripts/train_ltr.py --data online-retail [--bert-dir var/models/ranker]
        [--candidates 50] [--output var/models/ltr]

Protocol: the global temporal split of every evaluation (80% time quantile) gives the training
period; the test period is not read. Inside the training period a validation cut (its
``--validation-fraction`` time quantile, 0.8 by default) separates the EARLY part, from which
every feature is computed as of the cut (the shopper's history, own interactions, category
affinities, popularity, the candidate list), from the LATE part, whose items are the labels:
a candidate is relevant when the shopper interacted with it after the cut. The shoppers with
early history and late items are split at random into fitting groups and held-out validation
groups (``--holdout``); the validation NDCG@10 of the model, of the candidate source's order
and (with ``--bert-dir``) of the cross-encoder alone and of the orchestrator's fixed blend
is written into the artefact's metadata, with the shoppers it covers.

Candidates (``--source``): basket co-occurrence over the early part (offline.ranker.candidates,
the default: seconds), the two-tower model, or every served source fused (two-tower + ALS +
history, as the retrieval service answers), each trained on the early part; with the
shopper's own items allowed, as the serving retrieval allows them: whether a repeat is worth
showing is learned from the data, not fixed. The features are those of
shared.ranking_features, the same builder the ranker service runs; the cross-encoder score is
a feature only when ``--bert-dir`` names a cross-encoder (scoring every candidate on CPU costs
about 10 ms a pair), otherwise the model is fitted without it and its metadata says so.

Publishing: ``publish_gate`` keeps LATEST where it is (the version is still written, the
command exits 3) when the model orders its held-out candidates measurably worse than they
arrived; ``--no-gate`` publishes anyway, ``--promote VERSION`` points LATEST at a written
version.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from offline.evaluation.stats import paired_bootstrap
from offline.ranker.candidates import CooccurrenceCandidates
from services.feature_store.derived import DEFAULT_EVENT_WEIGHTS
from services.orchestrator.blend import blend
from services.orchestrator.config import OrchestratorSettings
from services.ranker.learned import (
    DEFAULT_ROOT,
    save_ranking_model,
    set_latest_ranking_model,
)
from shared import metrics
from shared.data import temporal_split
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import EVENT_PURCHASE, CatalogItem, Dataset, Interaction, split_log
from shared.ranking_features import (
    FEATURE_SET_VERSION,
    FEATURES,
    CandidateSignals,
    OwnInteraction,
    ShopperSignals,
    build_features,
)

# What the orchestrator asks of the feature store by default (OrchestratorSettings.recent_items):
# serving knows the shopper's own interactions for this many most recent items only, so
# training does too.
HISTORY_ITEMS = 20
# Titles in the cross-encoder's context, as offline.ranker.training.shopper_context.
CONTEXT_TITLES = 8
# Small trees with the candidate source's order as a monotone prior (see MONOTONE): chosen on
# an inner split of the FITTING shoppers of Online Retail (docs/ranker.md); 15-leaf trees
# without the prior fell below retrieval order there, as relevant rows are few (1%).
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 4,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.9,
    "lambdarank_truncation_level": 20,
    "verbosity": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
}


# A higher retrieval score (or earlier rank) never lowers the relevance, all else equal.
MONOTONE = {"retrieval_score_z": 1, "retrieval_rank": -1}

# Rolling cuts (event quantiles of the log the model may learn from) and the label window
# after each: more labelled shoppers than one cut gives (offline.evaluation.served).
ROLLING_CUTS = (0.6, 0.7, 0.8)
ROLLING_WINDOW = 0.2


@dataclass
class Group:
    """One shopper's candidate list at the cut: its items, features and labels."""

    user_id: str
    item_ids: list[str]
    features: np.ndarray
    labels: np.ndarray
    truth: set[str]
    prior: np.ndarray
    bert: np.ndarray | None = None


def shopper_signals(
    events: Sequence[Interaction],
    items: Mapping[str, CatalogItem],
    now: datetime,
    history_items: int = HISTORY_ITEMS,
) -> tuple[ShopperSignals, list[str]]:
    """The signals the ranker receives for a shopper whose log so far is ``events`` (oldest
    first), computed as the feature store derives them; and the history, newest first."""
    per_item: dict[str, list[Any]] = {}
    weight: dict[str, float] = defaultdict(float)
    for x in events:
        bought = x.event_type == EVENT_PURCHASE
        row = per_item.setdefault(x.item_id, [0, 0, x.timestamp])
        row[0] += 1
        row[1] += x.quantity if bought else 0
        row[2] = max(row[2], x.timestamp)
        item = items.get(x.item_id)
        weight[item.top_category if item else ""] += DEFAULT_EVENT_WEIGHTS.get(x.event_type, 1.0)
    recent = sorted(per_item, key=lambda i: (-per_item[i][2].timestamp(), i))[:history_items]
    total = sum(weight.values()) or 1.0
    signals = ShopperSignals(
        now=now,
        category_affinities={c: w / total for c, w in weight.items()},
        recent_item_prices=[items[i].price for i in recent if i in items],
        interactions={
            i: OwnInteraction(per_item[i][0], per_item[i][1], per_item[i][2]) for i in recent
        },
    )
    return signals, recent


def store_popularity(events: Sequence[Interaction]) -> dict[str, int]:
    """Distinct shoppers with any event on each item: what the feature store's DP release
    counts (services.feature_store.admin.contribution_bounded_counts over user_items), before
    its contribution bound and noise; the serving side of ``log_dp_popularity``."""
    users: dict[str, set[str]] = defaultdict(set)
    for x in events:
        users[x.item_id].add(x.user_id)
    return {item: len(u) for item, u in users.items()}


class ScoredSource(Protocol):
    """Candidates with their scores for a history (newest first), history items allowed."""

    def scored(
        self, history: Sequence[str], n: int, *, exclude_history: bool = True
    ) -> list[tuple[str, float]]: ...


class TwoTowerCandidates:
    """The serving retrieval's model (two-tower + exact FAISS, nothing excluded), trained on
    the early part only, so its scores know nothing of the labels. Costs a retrieval training
    (a minute or two on Online Retail's CPU)."""

    def __init__(self, early: Sequence[Interaction], items: Mapping[str, CatalogItem], seed: int):
        from offline.retrieval.training import TrainConfig, train
        from services.retrieval.index import build_index

        self.artefact = train(early, items, TrainConfig(), seed, dataset="validation-early")
        self.index = build_index(self.artefact, "flat")

    def scored(
        self, history: Sequence[str], n: int, *, exclude_history: bool = True
    ) -> list[tuple[str, float]]:
        from shared.artefacts.retrieval import ColdStartError

        seen = set(history) if exclude_history else set()
        try:
            vector = self.artefact.user_vector(list(history))
        except ColdStartError:
            # As the service answers cold start: the catalog in item-id order, scores 0.
            return [(i, 0.0) for i in self.artefact.catalog_items(n, seen)]
        return self.index.search(vector, n, seen)


class ServedCandidates:
    """The candidates the retrieval service would serve had its training period been
    ``early``: two-tower + implicit ALS + the shopper's own history, weighted RRF
    (``services.retrieval.retriever``, the service's default fusion weights), trained as
    ``offline.retrieval.publish`` trains them (seconds to minutes)."""

    def __init__(self, data: Dataset, early: Sequence[Interaction], seed: int):
        from offline.evaluation.retrieval_sources import served_models
        from offline.retrieval.training import TrainConfig

        self.served = served_models(data, early, TrainConfig(), seed)

    def scored(
        self, history: Sequence[str], n: int, *, exclude_history: bool = True
    ) -> list[tuple[str, float]]:
        from services.retrieval.retriever import retrieve_for_history

        found = retrieve_for_history(
            self.served, history, n, exclude=history if exclude_history else ()
        )
        return [(i, s) for i, s, _ in found.items]


def rolling_groups(
    data: Dataset,
    log: Sequence[Interaction],
    n_candidates: int,
    seed: int,
    cuts: Sequence[float] = ROLLING_CUTS,
    window: float = ROLLING_WINDOW,
    progress: Callable[[str], None] = print,
    bert: Callable[[Sequence[str], Sequence[str]], np.ndarray] | None = None,
) -> list[Group]:
    """Training groups from several cuts inside ``log`` (time order): at each event quantile
    q of ``cuts``, features and served candidates (models trained on the events before q)
    as of q, labels = the items each shopper interacted with between q and q + ``window``.
    Nothing after the end of ``log`` is read, so a model fitted on these groups can be scored
    on whatever follows ``log``. ``bert`` (history, ids) -> logits fills the cross-encoder
    feature; it must have been trained before the first cut, or its scores would have seen
    the labels."""
    ordered = sorted(log, key=lambda x: x.timestamp)
    groups: list[Group] = []
    for q in cuts:
        start = ordered[int(len(ordered) * q)].timestamp
        end_at = min(len(ordered) - 1, int(len(ordered) * (q + window)))
        end = ordered[end_at].timestamp if q + window < 1.0 else None
        early = [x for x in ordered if x.timestamp < start]
        late = [x for x in ordered if x.timestamp >= start and (end is None or x.timestamp < end)]
        users = sorted({x.user_id for x in early} & {x.user_id for x in late})
        source = ServedCandidates(data, early, seed)
        cut_groups = build_groups(
            early,
            late,
            data.items,
            start,
            users,
            n_candidates,
            bert=bert,
            progress=progress,
            source=source,
        )
        positives = int(sum(g.labels.sum() for g in cut_groups))
        progress(
            f"  cut at {start:%Y-%m-%d} (quantile {q:g}): {len(cut_groups)} shoppers, "
            f"{positives} relevant candidates"
        )
        groups.extend(cut_groups)
    return groups


def build_groups(
    early: Sequence[Interaction],
    late: Sequence[Interaction],
    items: Mapping[str, CatalogItem],
    now: datetime,
    users: Sequence[str],
    n_candidates: int,
    bert: Callable[[Sequence[str], Sequence[str]], np.ndarray] | None = None,
    progress: Callable[[str], None] = print,
    source: ScoredSource | None = None,
) -> list[Group]:
    """One group per shopper in ``users`` that has early history and late items; candidates
    from ``source`` (default: basket co-occurrence of the early part)."""
    source = source or CooccurrenceCandidates(early)
    counted = store_popularity(early)
    log_by_user: dict[str, list[Interaction]] = defaultdict(list)
    for x in early:
        log_by_user[x.user_id].append(x)
    truth: dict[str, set[str]] = defaultdict(set)
    for x in late:
        truth[x.user_id].add(x.item_id)
    groups = []
    for n_done, user in enumerate(users, 1):
        if not log_by_user.get(user) or not truth.get(user):
            continue
        shopper, history = shopper_signals(log_by_user[user], items, now)
        scored = [
            (i, s)
            for i, s in source.scored(history, n_candidates, exclude_history=False)
            if i in items
        ]
        ids = [i for i, _ in scored]
        cands = [
            CandidateSignals(
                item_id=i,
                top_category=items[i].top_category,
                price=items[i].price,
                retrieval_score=s,
                dp_popularity=float(counted.get(i, 0)),
            )
            for i, s in scored
        ]
        bert_scores = bert(history, ids) if bert is not None else None
        groups.append(
            Group(
                user_id=user,
                item_ids=ids,
                features=build_features(shopper, cands, bert_scores),
                labels=np.array([int(i in truth[user]) for i in ids], dtype=np.int32),
                truth=truth[user],
                prior=np.array([s for _, s in scored], dtype=np.float64),
                bert=bert_scores,
            )
        )
        if n_done % 200 == 0:
            progress(f"  features: {n_done}/{len(users)} shoppers")
    return groups


def _ndcg(groups: Sequence[Group], order: Callable[[Group], np.ndarray]) -> np.ndarray:
    """NDCG@10 per shopper of the candidates in ``order`` (truth outside the list: misses)."""
    return np.array(
        [metrics.ndcg_at_k([g.item_ids[i] for i in order(g)], g.truth, 10) for g in groups]
    )


def _sorted(values: np.ndarray) -> np.ndarray:
    return np.argsort(-values, kind="stable")


def fit(
    groups: Sequence[Group], features: Sequence[str], rounds: int, params: Mapping[str, Any]
) -> Any:
    """A lambdarank booster over the ``features`` columns of the groups with a positive."""
    import lightgbm

    useful = [g for g in groups if g.labels.any()]
    if not useful:
        raise ValueError("no shopper has a relevant candidate: nothing to learn from")
    cols = [FEATURES.index(f) for f in features]
    x = np.vstack([g.features[:, cols] for g in useful])
    y = np.concatenate([g.labels for g in useful])
    train_set = lightgbm.Dataset(
        x, y, group=[len(g.item_ids) for g in useful], feature_name=list(features)
    )
    full = {"monotone_constraints": [MONOTONE.get(f, 0) for f in features], **params}
    return lightgbm.train(full, train_set, num_boost_round=rounds)


def evaluate(
    booster: Any, groups: Sequence[Group], features: Sequence[str], ranker_weight: float
) -> dict[str, Any]:
    """Validation NDCG@10 of the model and of the orders it is meant to beat, and the paired
    95% bootstrap interval of the model's difference to each."""
    if not groups:
        raise ValueError("no validation shopper: nothing to evaluate on")
    cols = [FEATURES.index(f) for f in features]
    per_user = {
        "ltr": _ndcg(groups, lambda g: _sorted(booster.predict(g.features[:, cols]))),
        "candidate_order": _ndcg(groups, lambda g: np.arange(len(g.item_ids))),
    }
    if all(g.bert is not None for g in groups):
        per_user["bert"] = _ndcg(groups, lambda g: _sorted(np.asarray(g.bert)))
        per_user[f"blend({ranker_weight:g})"] = _ndcg(
            groups, lambda g: _sorted(blend(np.asarray(g.bert), g.prior, ranker_weight))
        )
    minus = {k: paired_bootstrap(per_user["ltr"], v, resamples=2000) for k, v in per_user.items()}
    return {
        "ndcg@10": {k: float(v.mean()) for k, v in per_user.items()},
        "ltr_minus": {
            k: {"mean": d.mean, "low": d.low, "high": d.high}
            for k, d in minus.items()
            if k != "ltr"
        },
    }


def pair_scorer(
    tokenizer: Any,
    max_length: int,
    logits: Callable[[dict[str, np.ndarray]], np.ndarray],
    items: Mapping[str, CatalogItem],
) -> Callable[[Sequence[str], Sequence[str]], np.ndarray]:
    """(history newest first, candidate ids) -> the cross-encoder's logits, with the pair
    texts training uses; ``logits`` runs the model on tokenised pairs. Scores are cached per
    (context, item): a shopper's candidates are often scored again (diversified rows)."""
    from offline.ranker.training import candidate_text, shopper_context
    from services.ranker.model import encode_pairs

    catalog = dict(items)
    cache: dict[tuple[str, str], float] = {}

    def score(history: Sequence[str], ids: Sequence[str]) -> np.ndarray:
        ctx = shopper_context(list(history), catalog, CONTEXT_TITLES)
        todo = [c for c in dict.fromkeys(ids) if (ctx, c) not in cache]
        for start in range(0, len(todo), 64):
            chunk = todo[start : start + 64]
            arrays = encode_pairs(
                tokenizer,
                [ctx] * len(chunk),
                [candidate_text(catalog[c]) for c in chunk],
                max_length,
            )
            for c, v in zip(chunk, np.asarray(logits(arrays)).reshape(-1), strict=True):
                cache[(ctx, c)] = float(v)
        return np.asarray([cache[(ctx, c)] for c in ids], dtype=np.float64)

    return score


def _bert_scorer(
    model_dir: str, items: Mapping[str, CatalogItem]
) -> tuple[Callable[[Sequence[str], Sequence[str]], np.ndarray], str]:
    """The cross-encoder's logits for (history, candidate ids), as scripts/evaluate.py."""
    from services.ranker.model import load_artefact, score_arrays

    artefact = load_artefact(model_dir)
    score = pair_scorer(
        artefact.tokenizer,
        artefact.max_length,
        lambda arrays: score_arrays(artefact.model, arrays),
        items,
    )
    return score, artefact.version


def publish_gate(validation: Mapping[str, Any]) -> dict[str, Any]:
    """May a model with these held-out ``evaluate`` figures move LATEST? Not when it orders
    its candidates measurably worse than they arrived: the paired bootstrap interval of its
    NDCG@10 minus the candidate order's lies entirely below 0 (serving it would undo the
    retrieval order). A tie passes."""
    d = validation["ltr_minus"]["candidate_order"]
    worse = d["high"] < 0.0
    return {
        "passed": not worse,
        "compared_with": "candidate_order",
        "difference": dict(d),
        "reason": (
            f"NDCG@10 minus the candidate order {d['mean']:+.4f} [{d['low']:+.4f}, "
            f"{d['high']:+.4f}] on the held-out shoppers: "
            + ("worse than the order it reorders, LATEST stays" if worse else "not worse")
        ),
    }


def run(ns: argparse.Namespace, progress: Callable[[str], None] = print) -> Path:
    t0 = time.perf_counter()
    data = data_from_args(ns)
    train, _ = temporal_split(data, 0.8)
    if not 0.0 < ns.validation_fraction < 1.0:
        raise SystemExit("--validation-fraction must be in (0, 1)")
    early, late = split_log(train, ns.validation_fraction)
    if not early or not late:
        raise SystemExit(f"{data.name}: the training period is too short for a validation cut")
    cut = late[0].timestamp
    candidates_users = sorted({x.user_id for x in early} & {x.user_id for x in late})
    random.Random(ns.seed).shuffle(candidates_users)
    if ns.users:
        candidates_users = candidates_users[: ns.users]
    n_hold = max(1, int(len(candidates_users) * ns.holdout))
    holdout, fitting = sorted(candidates_users[:n_hold]), sorted(candidates_users[n_hold:])
    progress(
        f"{data.name}: validation cut {cut:%Y-%m-%d %H:%M} inside the training period; "
        f"{len(early)} early / {len(late)} late events; {len(fitting)} fitting + "
        f"{len(holdout)} validation shoppers"
    )
    bert = None
    bert_version = ""
    if ns.bert_dir:
        bert, bert_version = _bert_scorer(ns.bert_dir, data.items)
        progress(f"cross-encoder {bert_version}: scoring every candidate (slow on CPU)")
    source: ScoredSource
    if ns.source == "two-tower":
        progress("training the two-tower retrieval model on the early part ...")
        source = TwoTowerCandidates(early, data.items, ns.seed)
    elif ns.source == "served":
        progress("training the served retrieval models (two-tower + ALS) on the early part ...")
        source = ServedCandidates(data, early, ns.seed)
    else:
        source = CooccurrenceCandidates(early)
    features = [f for f in FEATURES if bert is not None or f != "bert_score_z"]
    progress(f"building features ({FEATURE_SET_VERSION}: {', '.join(features)}) ...")
    fit_groups = build_groups(
        early, late, data.items, cut, fitting, ns.candidates, bert, progress, source
    )
    val_groups = build_groups(
        early, late, data.items, cut, holdout, ns.candidates, bert, progress, source
    )
    rows = sum(len(g.item_ids) for g in fit_groups)
    positives = int(sum(g.labels.sum() for g in fit_groups))
    progress(f"fitting lambdarank: {rows} rows, {positives} relevant, {ns.rounds} rounds ...")
    booster = fit(fit_groups, features, ns.rounds, DEFAULT_PARAMS)
    scores = evaluate(booster, val_groups, features, ns.ranker_weight)
    progress(
        f"validation NDCG@10 ({len(val_groups)} shoppers): "
        + ", ".join(f"{k} {v:.4f}" for k, v in scores["ndcg@10"].items())
    )
    for name, d in scores["ltr_minus"].items():
        progress(f"  ltr - {name}: {d['mean']:+.4f} [95% CI {d['low']:+.4f}, {d['high']:+.4f}]")
    import lightgbm

    version = ns.version or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    gate = {**publish_gate(scores), "skipped": bool(ns.no_gate)}
    meta = {
        "model_name": "ranker_ltr",
        "features": features,
        "lightgbm_version": lightgbm.__version__,
        "params": {**DEFAULT_PARAMS, "monotone": MONOTONE, "num_boost_round": ns.rounds},
        "training": {
            "dataset": data.name,
            "protocol": "validation cut inside the training period (80% split); features as "
            "of the cut from the early part, labels = items interacted with after it",
            "validation_fraction": ns.validation_fraction,
            "validation_cut": cut.isoformat(),
            "candidate_source": f"{ns.source} over the early part (history allowed)",
            "candidates": ns.candidates,
            "history_items": HISTORY_ITEMS,
            "fitting_shoppers": len(fit_groups),
            "rows": rows,
            "positives": positives,
            "bert_model_version": bert_version,
            "seed": ns.seed,
        },
        "validation": {"metric": "ndcg@10", "shoppers": len(val_groups), **scores},
        "publish_gate": gate,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    folder = save_ranking_model(
        booster, Path(ns.output), version, meta, set_latest=gate["passed"] or ns.no_gate
    )
    progress(f"wrote {folder} in {meta['seconds']} s")
    progress(f"publish gate: {gate['reason']}" + (" (--no-gate: published)" if ns.no_gate else ""))
    return folder


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(p)
    p.add_argument("--output", default=str(DEFAULT_ROOT), help="artefact root (LATEST)")
    p.add_argument("--version", default="", help="version name; default: the time")
    p.add_argument(
        "--bert-dir", default="", help="cross-encoder artefact for the bert_score_z feature"
    )
    p.add_argument("--candidates", type=int, default=50, help="candidates per shopper")
    p.add_argument(
        "--source",
        choices=["cooccurrence", "two-tower", "served"],
        default="cooccurrence",
        help="training candidates: basket co-occurrence (seconds), the serving two-tower "
        "model, or every served source fused (two-tower + ALS + history), each trained on the "
        "early part (minutes)",
    )
    p.add_argument("--validation-fraction", type=float, default=0.8)
    p.add_argument("--holdout", type=float, default=0.2, help="share of validation shoppers")
    p.add_argument("--users", type=int, default=0, help="at most this many shoppers; 0 = all")
    p.add_argument("--rounds", type=int, default=100, help="boosting rounds")
    p.add_argument(
        "--ranker-weight",
        type=float,
        default=OrchestratorSettings.model_fields["ranker_weight"].default,
        help="the fixed blend's weight to compare (default: the orchestrator's)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-gate",
        action="store_true",
        help="move LATEST even when the model orders its held-out candidates measurably worse "
        "than they arrived (default: the version is written, LATEST stays, exit 3)",
    )
    p.add_argument(
        "--promote",
        metavar="VERSION",
        default=None,
        help="train nothing: point LATEST under --output at this existing version (one the "
        "gate refused, or an older one to roll back to)",
    )
    ns = p.parse_args(argv)
    if ns.promote is not None:
        return ns
    if ns.candidates < 2:
        p.error("--candidates must be at least 2")
    if not 0.0 < ns.holdout < 1.0:
        p.error("--holdout must be in (0, 1)")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(sys.argv[1:] if argv is None else argv)
    if ns.promote is not None:
        try:
            set_latest_ranking_model(ns.output, ns.promote)
        except ValueError as exc:
            print(f"train_ltr: error: --promote: {exc}", file=sys.stderr)
            return 2
        print(f"LATEST -> {ns.promote} under {ns.output}")
        return 0
    folder = run(ns)
    gate = json.loads((folder / "meta.json").read_text())["publish_gate"]
    if not gate["passed"] and not ns.no_gate:
        print(
            f"LATEST not moved to {folder.name}; to serve it anyway: "
            f"python scripts/train_ltr.py --promote {folder.name} --output {ns.output}",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
