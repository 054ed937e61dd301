"""The served path offline: the stack's own default answer, chosen on validation.

``scripts/evaluate.py --served`` adds these rows. Unlike the artefact rows (trained on the
whole training period, so their validation figures are optimistic), everything here is trained
on the log BEFORE the cut it is scored after, once for the validation cut and once for the test
cut, so the validation column is honest and every choice below is made on it:

- **served**: the retrieval service's answer, every source fused (two-tower + implicit ALS +
  the shopper's own history, weighted RRF with the service's default weights;
  services.retrieval.retriever), models trained as offline.retrieval.publish trains them; the
  shopper's 20 most recent distinct items are the history, as the orchestrator asks of the
  feature store. A shopper none of whose items the models know gets the popularity list (the
  DP release's place in serving).
- **served + LTR**: those candidates ordered by the learned ranking model (LightGBM lambdarank
  over shared.ranking_features, without the cross-encoder score), fitted on rolling cuts
  inside the log (offline.ranker.ltr.rolling_groups), never on what it is scored on.
- **<ranking> + DPP(t) / MMR(t)**: the ranking the validation cut prefers (served or served +
  LTR), diversified by the reranker at trade-off t over the retrieval vectors and the full
  category paths (services.reranker, as the service runs it).

The served default is then chosen on validation by a rule fixed before looking: the ranking
with the higher validation NDCG@10 (ties: the cheaper, no model); then among its diversified
rows those whose validation NDCG@10 stays within ``knee_tolerance`` (relative) of the
undiversified ranking, the one with the highest validation ILD@10 (the knee of the relevance-
diversity curve); none within it: no diversification. The test rows are computed once, after
every choice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from offline.evaluation.protocol import Cut, per_user
from offline.evaluation.retrieval_sources import served_models
from offline.ranker.ltr import (
    DEFAULT_PARAMS,
    fit,
    rolling_groups,
    shopper_signals,
    store_popularity,
)
from offline.retrieval.training import TrainConfig
from services.reranker.rerank import Method, RerankParams, rerank
from services.retrieval.retriever import ServedIndex, retrieve_for_history
from shared import metrics
from shared.data.types import Dataset, Interaction
from shared.ranking_features import FEATURES, CandidateSignals, build_features

SERVED = "served"
LTR = "served + LTR"
# The learned model's features offline: the cross-encoder score needs a GPU-sized budget for
# every candidate of every shopper, so it is left out here (docs/ranker.md has its runs).
LTR_FEATURES = tuple(f for f in FEATURES if f != "bert_score_z")
LTR_ROUNDS = 100
KNEE_TOLERANCE = 0.05


@dataclass
class ServedPath:
    """The served models trained on one log, and what serving would know at its end."""

    served: ServedIndex
    booster: Any
    popular: list[str]
    buyers: Mapping[str, int]
    log_by_user: Mapping[str, list[Interaction]]
    now: datetime


def train_path(
    data: Dataset,
    log: Sequence[Interaction],
    *,
    candidates: int,
    seed: int,
    ltr: bool,
    progress: Callable[[str], None] = print,
) -> ServedPath:
    """Retrieval models (and with ``ltr`` the ranking model) trained on ``log`` only."""
    ordered = sorted(log, key=lambda x: x.timestamp)
    served = served_models(data, ordered, TrainConfig(), seed)
    booster = None
    if ltr:
        groups = rolling_groups(data, ordered, candidates, seed, progress=progress)
        try:
            booster = fit(groups, LTR_FEATURES, LTR_ROUNDS, DEFAULT_PARAMS)
        except ValueError as exc:  # no cut has a shopper with a relevant candidate
            progress(f"  no learned ranking model on this log: {exc}")
    buyers = store_popularity(ordered)
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for x in ordered:
        by_user[x.user_id].append(x)
    popular = sorted(buyers, key=lambda i: (-buyers[i], i))
    return ServedPath(served, booster, popular, buyers, by_user, ordered[-1].timestamp)


def _diversified(base: str, tradeoffs: Sequence[float]) -> list[tuple[str, Method, float]]:
    return [
        (f"{base} + {m.name}({t:g})", m, t) for m in (Method.DPP, Method.MMR) for t in tradeoffs
    ]


def path_lists(
    path: ServedPath,
    data: Dataset,
    users: Sequence[str],
    outside: set[str],
    *,
    candidates: int,
    rankings: Sequence[str],
    diversified: Sequence[tuple[str, Method, float]],
    k: int,
) -> dict[str, dict[str, list[str]]]:
    """The lists of the ``rankings`` (SERVED, LTR) and of ``diversified`` (name, method,
    trade-off over the first ranking) for ``users``."""
    out: dict[str, dict[str, list[str]]] = {name: {} for name in rankings}
    out.update({name: {} for name, _, _ in diversified})
    cols = [FEATURES.index(f) for f in LTR_FEATURES]
    for user in users:
        shopper, history = shopper_signals(path.log_by_user.get(user, []), data.items, path.now)
        found = retrieve_for_history(
            path.served, history, candidates, exclude=outside, include_embeddings=True
        )
        if found.cold_start:
            ids = [i for i in path.popular if i not in outside][:candidates]
            for name in out:
                out[name][user] = ids[:k]
            continue
        ids = [i for i, _, _ in found.items]
        scores = np.array([s for _, s, _ in found.items], dtype=np.float64)
        relevance = {SERVED: scores}
        if LTR in rankings:
            cands = [
                CandidateSignals(
                    i,
                    data.items[i].top_category,
                    data.items[i].price,
                    float(s),
                    float(path.buyers.get(i, 0)),
                )
                for i, s in zip(ids, scores, strict=True)
            ]
            x = build_features(shopper, cands, None)[:, cols]
            relevance[LTR] = np.asarray(path.booster.predict(x), dtype=np.float64)
        for name in rankings:
            out[name][user] = [ids[i] for i in np.argsort(-relevance[name], kind="stable")][:k]
        if diversified:
            vectors = [v for _, _, v in found.items if v is not None]
            if len(vectors) != len(ids):
                raise ValueError("a served candidate came without its retrieval vector")
            emb = np.stack(vectors)
            paths = [data.items[i].category_path for i in ids]
            rel = relevance[rankings[0]]
            for name, method, t in diversified:
                sel = rerank(rel, emb, paths, RerankParams(k=k, method=method, tradeoff=t))
                out[name][user] = [ids[i] for i in sel.indices]
    return out


def _ild(lists: Mapping[str, list[str]], title_vec: Mapping[str, np.ndarray]) -> float:
    return float(np.mean([metrics.intra_list_diversity(r[:10], title_vec) for r in lists.values()]))


def knee(
    ranking: str,
    diversified: Sequence[str],
    ndcg: Mapping[str, float],
    ild: Mapping[str, float],
    tolerance: float,
) -> str:
    """The diversified row with the highest ILD@10 among those whose NDCG@10 is at least
    (1 - ``tolerance``) x the ``ranking``'s (ties: the first); none: the ranking itself."""
    floor = (1.0 - tolerance) * ndcg[ranking]
    within = [name for name in diversified if ndcg[name] >= floor]
    if not within:
        return ranking
    return max(within, key=lambda name: (ild[name], -within.index(name)))


def served_rows(
    data: Dataset,
    held: Cut,
    valid: Cut,
    valid_users: Sequence[str],
    users: Sequence[str],
    outside: set[str],
    title_vec: Mapping[str, np.ndarray],
    *,
    candidates: int,
    tradeoffs: Sequence[float],
    ltr: bool,
    seed: int,
    k: int,
    knee_tolerance: float = KNEE_TOLERANCE,
    progress: Callable[[str], None] = print,
) -> tuple[dict[str, dict[str, list[str]]], dict[str, float], dict[str, Any]]:
    """(test lists per row, validation NDCG@10 per row, the choices made on validation)."""
    rankings = [SERVED, LTR] if ltr else [SERVED]
    truth_v = {u: valid.truth[u] for u in valid_users}

    def ndcg(lists: Mapping[str, list[str]]) -> float:
        return float(np.mean(per_user(lists, truth_v, valid_users)))

    progress("  served path: training on the validation cut's early part ...")
    on_valid = train_path(
        data, valid.before, candidates=candidates, seed=seed, ltr=ltr, progress=progress
    )
    if on_valid.booster is None:
        rankings = [SERVED]
    lists_v = path_lists(
        on_valid,
        data,
        valid_users,
        outside,
        candidates=candidates,
        rankings=rankings,
        diversified=(),
        k=k,
    )
    validation = {name: ndcg(lists_v[name]) for name in rankings}
    # Ties go to the first, the one without a model.
    ranking = max(rankings, key=lambda name: (validation[name], -rankings.index(name)))
    diversified = _diversified(ranking, tradeoffs)
    div_v = path_lists(
        on_valid,
        data,
        valid_users,
        outside,
        candidates=candidates,
        rankings=[ranking],
        diversified=diversified,
        k=k,
    )
    ild_v = {name: _ild(div_v[name], title_vec) for name in div_v}
    for name, _, _ in diversified:
        validation[name] = ndcg(div_v[name])
    default = knee(ranking, [name for name, _, _ in diversified], validation, ild_v, knee_tolerance)
    progress(
        f"  served path on validation: {', '.join(f'{n} {validation[n]:.4f}' for n in rankings)}"
        f"; default chosen: {default}"
    )
    progress("  served path: training on the whole training period ...")
    on_test = train_path(
        data, held.before, candidates=candidates, seed=seed, ltr=LTR in rankings, progress=progress
    )
    if LTR in rankings and on_test.booster is None:
        if ranking == LTR:
            raise SystemExit(
                "the learned ranking model chosen on validation could not be fitted on the "
                "whole training period (no relevant candidate in its rolling cuts)"
            )
        rankings = [SERVED]
    lists = path_lists(
        on_test, data, users, outside, candidates=candidates, rankings=rankings, diversified=(), k=k
    )
    lists.update(
        path_lists(
            on_test,
            data,
            users,
            outside,
            candidates=candidates,
            rankings=[ranking],
            diversified=diversified,
            k=k,
        )
    )
    chosen = {
        "ranking": ranking,
        "default": default,
        "knee_tolerance": knee_tolerance,
        "validation_ndcg@10": validation,
        "validation_ild@10": {ranking: _ild(lists_v[ranking], title_vec), **ild_v},
    }
    return lists, validation, chosen
