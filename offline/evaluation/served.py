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
- **served + LTR + BERT** (with ``bert_steps``): the same with the cross-encoder's score as a
  feature. The cross-encoder is fine-tuned in the run (offline.ranker.training, the recipe of
  ``bert_config``) on the log before the FIRST rolling cut, so its scores on the rolling cuts'
  candidates never saw their labels, and it scores in fp32 on OpenVINO where installed
  (else on torch): the model's own scores, whatever the CPU.
- **<ranking> + DPP(t) / MMR(t)**: the ranking the validation cut prefers (served or served +
  LTR), diversified by the reranker at trade-off t over the retrieval vectors and the full
  category paths (services.reranker, as the service runs it).

The served default is then chosen on validation by a rule fixed before looking: the ranking
with the higher validation NDCG@10 (ties: the cheaper, no model); then among its diversified
rows those whose validation NDCG@10 stays within ``knee_tolerance`` (relative) of the
undiversified ranking, the one with the highest validation ILD@10 (the knee of the relevance-
diversity curve); none within it: no diversification. "Validation" is the validation cut
and the ``EARLIER_VALIDATION_CUTS`` of the training period pooled (``validation_cuts``): each
cut trains its own models on the log before it and is scored on the same 20% window after
it, and every NDCG@10 and ILD@10 above is the mean over all of their shoppers' lists. With
several training seeds (``validation_cuts(model_seeds=...)``) every cut is repeated per seed
and pooled the same way, so a choice does not rest on one draw of the training randomness.
The test rows are computed once, after every choice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from offline.evaluation.protocol import Cut, per_user
from offline.evaluation.retrieval_sources import served_models
from offline.ranker.ltr import (
    DEFAULT_PARAMS,
    ROLLING_CUTS,
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
LTR_BERT = "served + LTR + BERT"
# The learned model's features offline: the cross-encoder score needs a GPU-sized budget for
# every candidate of every shopper, so it is left out here (docs/ranker.md has its runs).
LTR_FEATURES = tuple(f for f in FEATURES if f != "bert_score_z")
LTR_ROUNDS = 100
KNEE_TOLERANCE = 0.05
# Earlier cuts inside the training period the served choices are also made on (event
# quantiles, each with the validation cut's 20% window). On Online Retail the cost of one
# trade-off, DPP(0.25), was 7%, 11% and 3% of NDCG@10 at the 0.6, 0.7 and 0.8 cuts
# (docs/evaluation.md, run of 2026-12-03): one cut of ~850 shoppers cannot place a knee.
EARLIER_VALIDATION_CUTS = (0.6, 0.7)


@dataclass
class ServedPath:
    """The served models trained on one log, and what serving would know at its end."""

    served: ServedIndex
    booster: Any
    popular: list[str]
    buyers: Mapping[str, int]
    log_by_user: Mapping[str, list[Interaction]]
    now: datetime
    booster_bert: Any = None
    bert: Callable[[Sequence[str], Sequence[str]], np.ndarray] | None = None


def bert_config(steps: int, seed: int, layers: int = -1) -> Any:
    """The cross-encoder recipe of the served path's BERT feature: the training defaults
    (chosen on the validation learning curve, docs/ranker.md: own items in the lists, all
    layers) for ``steps`` steps; ``layers`` > 0 tunes only the top ones."""
    from offline.ranker.training import TrainConfig

    return TrainConfig(
        steps=steps,
        max_length=48,
        history_candidates=20,
        trainable_layers=layers,
        seed=seed,
        checkpoint_every=steps,
    )


def bert_scorer(
    data: Dataset,
    log: Sequence[Interaction],
    *,
    steps: int,
    seed: int,
    layers: int = -1,
    progress: Callable[[str], None] = print,
) -> Callable[[Sequence[str], Sequence[str]], np.ndarray]:
    """A cross-encoder fine-tuned on ``log`` only, as (history, ids) -> logits."""
    import tempfile
    from pathlib import Path

    from offline.ranker import cpu_precision as cp
    from offline.ranker.candidates import CooccurrenceCandidates
    from offline.ranker.export import export_onnx
    from offline.ranker.ltr import pair_scorer
    from offline.ranker.training import train
    from services.ranker.model import score_arrays

    config = bert_config(steps, seed, layers)
    tuned = "all layers" if layers < 0 else f"top {layers} layers"
    progress(f"  cross-encoder: {steps} steps ({tuned}) on {len(log)} events ...")
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, stats = train(
            data,
            log,
            CooccurrenceCandidates(log),
            config,
            checkpoint_dir=Path(tmp) / "checkpoints",
            progress=False,
        )
        model = model.to("cpu").eval()
        progress(
            f"  cross-encoder: loss {stats['first_loss']:.3f} -> {stats['last_loss']:.3f} "
            f"over {stats['examples']} groups"
        )
        if cp.openvino_missing() is not None:
            progress("  cross-encoder scores on torch fp32 (no OpenVINO here)")
            return pair_scorer(
                tokenizer, config.max_length, lambda a: score_arrays(model, a), data.items
            )
        # fp32: the model's own scores on every CPU. int8 agrees with them only where the
        # CPU has the kernels it was checked with (docs/ranker.md: on an AVX2-only CPU
        # OpenVINO int8 costs 11% NDCG@10), and a quality figure must not depend on the CPU.
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx")
        run = cp.openvino_scorer(onnx_path, cp.OPENVINO_HINTS["openvino_fp32"], 2)
    return pair_scorer(tokenizer, config.max_length, run, data.items)


def train_path(
    data: Dataset,
    log: Sequence[Interaction],
    *,
    candidates: int,
    seed: int,
    ltr: bool,
    bert_steps: int = 0,
    bert_layers: int = -1,
    progress: Callable[[str], None] = print,
) -> ServedPath:
    """Retrieval models (and with ``ltr`` the ranking model; with ``bert_steps`` also a
    cross-encoder and the ranking model over its score) trained on ``log`` only."""
    ordered = sorted(log, key=lambda x: x.timestamp)
    served = served_models(data, ordered, TrainConfig(), seed)
    booster = booster_bert = bert = None
    if ltr:
        if bert_steps:
            first_cut = ordered[int(len(ordered) * ROLLING_CUTS[0])].timestamp
            before = [x for x in ordered if x.timestamp < first_cut]
            bert = bert_scorer(
                data, before, steps=bert_steps, seed=seed, layers=bert_layers, progress=progress
            )
        groups = rolling_groups(data, ordered, candidates, seed, progress=progress, bert=bert)
        try:
            booster = fit(groups, LTR_FEATURES, LTR_ROUNDS, DEFAULT_PARAMS)
            if bert is not None:
                booster_bert = fit(groups, FEATURES, LTR_ROUNDS, DEFAULT_PARAMS)
        except ValueError as exc:  # no cut has a shopper with a relevant candidate
            progress(f"  no learned ranking model on this log: {exc}")
    buyers = store_popularity(ordered)
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for x in ordered:
        by_user[x.user_id].append(x)
    popular = sorted(buyers, key=lambda i: (-buyers[i], i))
    return ServedPath(
        served, booster, popular, buyers, by_user, ordered[-1].timestamp, booster_bert, bert
    )


def diversified_rows(base: str, tradeoffs: Sequence[float]) -> list[tuple[str, Method, float]]:
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
        if LTR in rankings or LTR_BERT in rankings:
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
            bert = path.bert(history, ids) if LTR_BERT in rankings and path.bert else None
            x = build_features(shopper, cands, bert)
            if LTR in rankings:
                relevance[LTR] = np.asarray(path.booster.predict(x[:, cols]), dtype=np.float64)
            if LTR_BERT in rankings:
                relevance[LTR_BERT] = np.asarray(path.booster_bert.predict(x), dtype=np.float64)
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


@dataclass
class ValidationCut:
    """One cut the served choices are made on, with one training seed: its models, shoppers
    and figures."""

    label: str
    cut: Cut
    users: list[str]
    outside: set[str]
    seed: int = 0
    path: ServedPath | None = None
    ndcg: dict[str, np.ndarray] = field(default_factory=dict)
    ild: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "cut": self.label,
            "seed": self.seed,
            "from": f"{self.cut.after[0].timestamp:%Y-%m-%d %H:%M}",
            "shoppers": len(self.users),
            "validation_ndcg@10": {n: float(v.mean()) for n, v in self.ndcg.items()},
            "validation_ild@10": dict(self.ild),
        }


def validation_cuts(
    data: Dataset,
    held: Cut,
    valid: Cut,
    valid_users: Sequence[str],
    outside: set[str],
    earlier: Sequence[float],
    *,
    users_limit: int = 0,
    seed: int = 0,
    cut_catalog: bool = True,
    model_seeds: Sequence[int] = (),
) -> list[ValidationCut]:
    """The validation cut, then one cut per ``earlier`` quantile of the training period with
    the same window (protocol.window_cut); a cut without an eligible shopper is left out.
    With ``cut_catalog`` an earlier cut excludes the items not yet known at it as well.

    Each cut is listed once per training seed of ``model_seeds`` (default: ``seed`` alone),
    seed by seed, so the choices pool the training randomness as well as the cuts; with more
    than one seed a label names its seed ("0.8 s1")."""
    from offline.evaluation.protocol import VALIDATION_FRACTION, sample, window_cut
    from shared.data.types import catalog_at

    seeds = list(model_seeds) or [seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the training seeds must differ, got {seeds}")
    found = [(f"{VALIDATION_FRACTION:g}", valid, list(valid_users), outside)]
    for q in sorted(earlier):
        c = window_cut(held.before, q)
        if not c.users:
            continue
        unknown = set(data.items) - set(catalog_at(data, c.after[0].timestamp))
        found.append(
            (
                f"{q:g}",
                c,
                sample(c.users, users_limit, seed),
                outside | unknown if cut_catalog else outside,
            )
        )
    return [
        ValidationCut(label if len(seeds) == 1 else f"{label} s{s}", c, users, out, s)
        for s in seeds
        for label, c, users, out in found
    ]


def _train_cuts(
    data: Dataset,
    cuts: Sequence[ValidationCut],
    rankings: list[str],
    *,
    candidates: int,
    bert_steps: int,
    bert_layers: int,
    progress: Callable[[str], None],
) -> list[str]:
    """Train each cut's path on the log before it (with the cut's seed); the rankings every
    cut could fit."""
    rankings = list(rankings)
    for vc in cuts:
        progress(f"  served path: training before the validation cut at {vc.label} ...")
        vc.path = train_path(
            data,
            vc.cut.before,
            candidates=candidates,
            seed=vc.seed,
            ltr=LTR in rankings,
            bert_steps=bert_steps if LTR_BERT in rankings else 0,
            bert_layers=bert_layers,
            progress=progress,
        )
        if vc.path.booster is None:
            rankings = [SERVED]
        elif vc.path.booster_bert is None and LTR_BERT in rankings:
            rankings.remove(LTR_BERT)
    return rankings


def _test_lists(
    data: Dataset,
    held: Cut,
    users: Sequence[str],
    outside: set[str],
    rankings: list[str],
    ranking: str,
    diversified: Sequence[tuple[str, Method, float]],
    *,
    candidates: int,
    seed: int,
    k: int,
    bert_steps: int,
    bert_layers: int,
    progress: Callable[[str], None],
) -> dict[str, dict[str, list[str]]]:
    """The test lists, read once: every model retrained on the whole training period."""
    progress("  served path: training on the whole training period ...")
    on_test = train_path(
        data,
        held.before,
        candidates=candidates,
        seed=seed,
        ltr=LTR in rankings,
        bert_steps=bert_steps if LTR_BERT in rankings else 0,
        bert_layers=bert_layers,
        progress=progress,
    )
    rankings = list(rankings)
    if LTR in rankings and on_test.booster is None:
        if ranking in (LTR, LTR_BERT):
            raise SystemExit(
                "the learned ranking model chosen on validation could not be fitted on the "
                "whole training period (no relevant candidate in its rolling cuts)"
            )
        rankings = [SERVED]
    if LTR_BERT in rankings and on_test.booster_bert is None:
        if ranking == LTR_BERT:
            raise SystemExit("the BERT ranking model chosen on validation could not be fitted")
        rankings.remove(LTR_BERT)
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
    return lists


def served_rows(
    data: Dataset,
    held: Cut,
    cuts: Sequence[ValidationCut],
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
    bert_steps: int = 0,
    bert_layers: int = -1,
    progress: Callable[[str], None] = print,
) -> tuple[dict[str, dict[str, list[str]]], dict[str, float], dict[str, Any]]:
    """(test lists per row, the first cut's validation NDCG@10 per row, the choices made on
    validation). Every choice is made on the shoppers of all ``cuts`` pooled (one NDCG@10 per
    shopper and cut), each cut's models trained on the log before it."""
    if not cuts:
        raise ValueError("the served choices need at least one validation cut")
    rankings = [SERVED, LTR] if ltr else [SERVED]
    if ltr and bert_steps:
        rankings.append(LTR_BERT)

    rankings = _train_cuts(
        data,
        cuts,
        rankings,
        candidates=candidates,
        bert_steps=bert_steps,
        bert_layers=bert_layers,
        progress=progress,
    )

    def score(names: Sequence[str], diversified: Sequence[tuple[str, Method, float]]) -> None:
        for vc in cuts:
            assert vc.path is not None
            truth = {u: vc.cut.truth[u] for u in vc.users}
            got = path_lists(
                vc.path,
                data,
                vc.users,
                vc.outside,
                candidates=candidates,
                rankings=names,
                diversified=diversified,
                k=k,
            )
            for name, lists in got.items():
                vc.ndcg[name] = per_user(lists, truth, vc.users)
                vc.ild[name] = _ild(lists, title_vec)

    def pooled(name: str) -> float:
        return float(np.mean(np.concatenate([vc.ndcg[name] for vc in cuts])))

    def pooled_ild(name: str) -> float:
        total = sum(len(vc.users) for vc in cuts)
        return sum(vc.ild[name] * len(vc.users) for vc in cuts) / total

    score(rankings, ())
    validation = {name: pooled(name) for name in rankings}
    # Ties go to the first, the one without a model.
    ranking = max(rankings, key=lambda name: (validation[name], -rankings.index(name)))
    diversified = diversified_rows(ranking, tradeoffs)
    score([ranking], diversified)
    names = [name for name, _, _ in diversified]
    validation.update({name: pooled(name) for name in names})
    ild_v = {name: pooled_ild(name) for name in [ranking, *names]}
    default = knee(ranking, names, validation, ild_v, knee_tolerance)
    progress(
        f"  served path on validation ({len(cuts)} cut(s), "
        f"{sum(len(vc.users) for vc in cuts)} shopper lists): "
        f"{', '.join(f'{n} {validation[n]:.4f}' for n in rankings)}; default chosen: {default}"
    )
    lists = _test_lists(
        data,
        held,
        users,
        outside,
        rankings,
        ranking,
        diversified,
        candidates=candidates,
        seed=seed,
        k=k,
        bert_steps=bert_steps,
        bert_layers=bert_layers,
        progress=progress,
    )
    chosen = {
        "ranking": ranking,
        "bert_steps": bert_steps,
        "bert_layers": bert_layers,
        "default": default,
        "knee_tolerance": knee_tolerance,
        "validation_ndcg@10": validation,
        "validation_ild@10": ild_v,
        "validation_cuts": [vc.record() for vc in cuts],
    }
    first = {name: float(v.mean()) for name, v in cuts[0].ndcg.items()}
    return lists, first, chosen
