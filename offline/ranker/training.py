"""Fine-tuning and offline evaluation of the cross-encoder.

Training examples come from the temporal TRAINING split: for each shopper and each basket
after the first, the context is everything the shopper did before that basket, the positive
is an item of that basket the shopper had not bought before, and the hard negatives are
candidates of the chosen source (retrieval, or co-occurrence when no retrieval artefact is
there) that were not in the basket. The loss is the listwise softmax cross-entropy over one
positive and its negatives, i.e. ListNet with top-one probabilities and a one-hot target
(Cao et al., "Learning to Rank: From Pairwise Approach to Listwise Approach", ICML 2007),
as used for BERT re-rankers by Han et al. (2020, "Learning-to-Rank with BERT in TF-Ranking").

Evaluation re-ranks each TEST shopper's candidate list (built from the training history only)
and compares NDCG@10 / Recall@10 of three orders of the same list: the source's own order,
training popularity, and the cross-encoder. The cross-encoder's order of those lists is also
what the publish gate compares with the version ``LATEST`` names (offline.ranker.gate): a
version that orders them measurably worse is written, but ``LATEST`` stays.

With ``history_candidates`` > 0 the candidate lists also hold the shopper's own most recent
items, as the served retrieval's history source adds them: a basket item bought before is
then a training positive like a new one, and the evaluation truth is everything bought
after the cut, repeats included, as the served path is scored (offline.evaluation). With 0,
positives and truth are new items only.

``learning_curve`` makes the recipe's choices (steps, layers, candidate lists) where the test
period is never read: it trains on the early part of the training period
(``offline.evaluation.protocol.validation_cut``) with a candidate source fitted there, and
scores checkpoints of one schedule on the late part.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from offline.evaluation.champion import report
from offline.ranker.candidates import CandidateSource, baskets, choose_source, popularity
from services.ranker.model import (
    CrossEncoder,
    build_model,
    encode_pairs,
    new_version,
    save_artefact,
    score_arrays,
    set_latest_version,
)
from services.ranker.versions import VERSION_NAME
from shared import metrics
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import CatalogItem, Dataset, Interaction
from shared.ranker_text import context_text, item_text

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass(frozen=True)
class Example:
    """One listwise group: the positive item text first, then the negatives."""

    context: str
    items: tuple[str, ...]


@dataclass
class TrainConfig:
    """Everything that determines a training run; stored in meta.json."""

    # Chosen on the validation cut (docs/ranker.md, "Learning curve on validation"): 250
    # steps of all layers with the shopper's own items in the lists beat 1,000 and 3,000
    # steps, top-2 layers, and new-items-only training there.
    steps: int = 250
    groups_per_step: int = 4
    negatives: int = 7
    candidates: int = 50
    max_length: int = 64
    lr: float = 1e-4
    # The head starts from random weights and needs a far larger step than the pretrained
    # layers; one shared rate either leaves it near zero or wrecks the backbone.
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    seed: int = 13
    checkpoint_every: int = 50
    max_examples: int = 20_000
    eval_users: int = 200
    eval_candidates: int = 50
    eval_batch: int = 64
    history_titles: int = 8
    # Top encoder layers fine-tuned (the rest and the embeddings stay frozen); -1 trains
    # all (the validated default; about 2.5x the CPU time per step of the top 2).
    trainable_layers: int = -1
    # Keep only cuts whose positive is among the source's candidates, so positives and
    # negatives come from the list the ranker will re-rank. Without it the model learns to
    # tell "anything bought" from "what the source proposes", which runs against the source.
    positives_in_candidates: bool = True
    pooling: str = "item_mean"
    # Up to this many of the shopper's newest own items join every training candidate list,
    # as the served retrieval's history source adds them, and their repeat purchases become
    # positives. 0: new items only.
    history_candidates: int = 20
    # The same for the evaluation lists; > 0 also makes the truth everything bought after
    # the cut, repeats included, as the served path is scored. -1: as in training.
    eval_history_candidates: int = -1
    extra: dict[str, str] = field(default_factory=dict)


def shopper_context(
    history: Sequence[str], items: dict[str, CatalogItem], max_titles: int = 8
) -> str:
    """Context text of a history (item ids newest first), categories by frequency."""
    known = [items[i] for i in history if i in items]
    cats = [c for c, _ in _top_categories(known)]
    return context_text([it.title for it in known[:max_titles]], cats)


def _top_categories(known: Sequence[CatalogItem]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for it in known:
        counts[it.top_category] = counts.get(it.top_category, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def candidate_text(item: CatalogItem) -> str:
    return item_text(item.title, item.category_path, item.price)


def _newest_first(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in reversed(items):
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def eval_history(config: TrainConfig) -> int:
    """Own items per evaluation list (``eval_history_candidates``, -1 = as in training)."""
    if config.eval_history_candidates < 0:
        return config.history_candidates
    return config.eval_history_candidates


def with_history(cands: Sequence[str], history: Sequence[str], n: int) -> list[str]:
    """The source's candidates, then up to ``n`` of the newest history items not among them."""
    listed = set(cands)
    return [*cands, *[i for i in history if i not in listed][:n]]


def build_examples(
    dataset: Dataset,
    train: Sequence[Interaction],
    source: CandidateSource,
    config: TrainConfig,
    rng: random.Random,
) -> list[Example]:
    """Listwise groups from every (shopper, next basket) cut of the training split."""
    examples: list[Example] = []
    for user in sorted(groups := baskets(train)):
        history: list[str] = []
        for basket in groups[user]:
            past = _newest_first(history)
            bought, in_basket = set(past), set(basket)
            fresh = [
                i
                for i in basket
                if (config.history_candidates or i not in bought) and i in dataset.items
            ]
            if past and fresh:
                cands = source.candidates(past, config.candidates)
                cands = with_history(cands, past, config.history_candidates)
                if config.positives_in_candidates:
                    listed = set(cands)
                    fresh = [i for i in fresh if i in listed]
                negs = [c for c in cands if c not in in_basket and c in dataset.items]
                if fresh and len(negs) >= config.negatives:
                    pos = rng.choice(fresh)
                    picked = rng.sample(negs, config.negatives)
                    examples.append(
                        Example(
                            shopper_context(past, dataset.items, config.history_titles),
                            tuple(candidate_text(dataset.items[i]) for i in [pos, *picked]),
                        )
                    )
            history.extend(basket)
    rng.shuffle(examples)
    return examples[: config.max_examples]


def _schedule_fields(config: TrainConfig) -> dict[str, Any]:
    """The fields that decide the training trajectory; evaluation settings may differ."""
    return {k: v for k, v in asdict(config).items() if not k.startswith("eval_")}


def _save_checkpoint(
    path: Path,
    config: TrainConfig,
    step: int,
    model: CrossEncoder,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    losses: list[float],
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "losses": losses,
            "torch_rng": torch.get_rng_state(),
            "config": _schedule_fields(config),
        },
        tmp,
    )
    tmp.replace(path)


def _freeze_lower_layers(model: CrossEncoder, trainable_layers: int) -> None:
    if trainable_layers < 0:
        return
    layers = model.backbone.encoder.layer
    frozen = [model.backbone.embeddings, *layers[: max(0, len(layers) - trainable_layers)]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)


def train(
    dataset: Dataset,
    train_split: Sequence[Interaction],
    source: CandidateSource,
    config: TrainConfig,
    *,
    checkpoint_dir: Path,
    resume: bool = False,
    until_step: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> tuple[CrossEncoder, Any, dict[str, Any]]:
    """Fine-tune from the pretrained backbone; returns (model, tokenizer, training stats).

    Deterministic for a seed on one device: the examples, their order, the head
    initialisation and dropout all come from ``config.seed``. With ``resume`` the run
    continues from ``checkpoint_dir/checkpoint.pt`` at the step it had reached; the batch
    schedule is a pure function of the step, so a resumed run sees the same batches.
    ``until_step`` stops early (with a checkpoint) without changing the learning-rate
    schedule, for time-boxed runs on shared machines.
    """
    from transformers import get_linear_schedule_with_warmup

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rng = random.Random(config.seed)
    examples = build_examples(dataset, train_split, source, config, rng)
    if not examples:
        raise ValueError("no training examples: too few shoppers with two or more baskets")
    model, tokenizer = build_model(config.seed, config.pooling)
    _freeze_lower_layers(model, config.trainable_layers)
    model.to(device).train()
    optimizer = torch.optim.AdamW(
        [
            {
                "params": [p for p in model.backbone.parameters() if p.requires_grad],
                "lr": config.lr,
            },
            {"params": list(model.head.parameters()), "lr": config.head_lr},
        ],
        weight_decay=config.weight_decay,
    )
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(config.warmup_fraction * config.steps), config.steps
    )
    start, losses = 0, []
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_dir / CHECKPOINT_FILE
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state.get("config") != _schedule_fields(config):
            raise ValueError(f"{ckpt} was written by a run with other settings; not resuming")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start, losses = int(state["step"]), list(state["losses"])
        log.info("resumed", extra={"step": start})
    group = 1 + config.negatives
    end = config.steps if until_step is None else min(until_step, config.steps)
    bar = tqdm(range(start, end), desc="train", disable=not progress, initial=start)
    for step in bar:
        batch = [
            examples[(step * config.groups_per_step + j) % len(examples)]
            for j in range(config.groups_per_step)
        ]
        contexts = [ex.context for ex in batch for _ in ex.items]
        texts = [t for ex in batch for t in ex.items]
        arrays = encode_pairs(tokenizer, contexts, texts, config.max_length)
        logits = model(**{k: torch.from_numpy(v).to(device) for k, v in arrays.items()})
        logits = logits.view(len(batch), group)
        target = torch.zeros(len(batch), dtype=torch.long, device=device)
        loss = torch.nn.functional.cross_entropy(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.item()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == end:
            _save_checkpoint(ckpt, config, step + 1, model, optimizer, scheduler, losses)
    model.eval()
    stats = {
        "examples": len(examples),
        "steps": end,
        "resumed_from_step": start,
        "first_loss": float(np.mean(losses[:10])) if losses else None,
        "last_loss": float(np.mean(losses[-10:])) if losses else None,
        "device": device,
    }
    return model, tokenizer, stats


def held_out(
    train_split: Sequence[Interaction], test_split: Sequence[Interaction], config: TrainConfig
) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """Every shopper's training history (newest first) and the truth of up to
    ``config.eval_users`` test shoppers (seeded sample) with training history.

    Relevant items: what a shopper bought in the test period and had not bought in training
    (with ``history_candidates``: everything they bought in it).
    """
    history: dict[str, list[str]] = {}
    for user, groups in baskets(train_split).items():
        history[user] = _newest_first([i for b in groups for i in b])
    truth: dict[str, set[str]] = {}
    for user, groups in baskets(test_split).items():
        if user in history:
            later = {i for b in groups for i in b}
            relevant = later if eval_history(config) else later - set(history[user])
            if relevant:
                truth[user] = relevant
    users = sorted(truth)
    random.Random(config.seed).shuffle(users)
    return history, {u: truth[u] for u in sorted(users[: config.eval_users])}


def bert_order(
    model: CrossEncoder,
    tokenizer: Any,
    context: str,
    cands: Sequence[str],
    items: Mapping[str, CatalogItem],
    max_length: int,
    batch: int,
) -> list[str]:
    """``cands`` ordered by the cross-encoder's score for one shopper ``context``, highest
    first (ties keep the list's order)."""
    scores: list[float] = []
    for start in range(0, len(cands), batch):
        chunk = cands[start : start + batch]
        arrays = encode_pairs(
            tokenizer,
            [context] * len(chunk),
            [candidate_text(items[c]) for c in chunk],
            max_length,
        )
        scores.extend(score_arrays(model, arrays).tolist())
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [cands[i] for i in order]


def score_lists(
    model: CrossEncoder,
    tokenizer: Any,
    dataset: Dataset,
    history: dict[str, list[str]],
    truth: dict[str, set[str]],
    source: CandidateSource,
    pop: Any,
    config: TrainConfig,
    *,
    progress: bool = True,
    lists_out: dict[str, dict[str, list[str]]] | None = None,
) -> dict[str, Any]:
    """The three orders of every ``truth`` shopper's candidate list (``source`` over their
    ``history``, newest first, plus their own items when ``history_candidates``); with
    ``lists_out`` also the lists themselves, by order name and shopper."""
    users = sorted(truth)
    own_items = eval_history(config)
    lists: dict[str, dict[str, list[str]]] = {"source": {}, "popularity": {}, "bert": {}}
    if own_items:
        lists["own_first"] = {}
    for user in tqdm(users, desc="evaluate", disable=not progress):
        listed = source.candidates(history[user], config.eval_candidates)
        cands = with_history(listed, history[user], own_items)
        cands = [c for c in cands if c in dataset.items]
        position = {c: k for k, c in enumerate(cands)}
        lists["source"][user] = cands
        if own_items:  # the repeat baseline on the same list
            own = cands[len([c for c in listed if c in dataset.items]) :]
            lists["own_first"][user] = [*own, *[c for c in cands if c not in set(own)]]
        lists["popularity"][user] = sorted(cands, key=lambda c: (-pop[c], position[c]))
        ctx = shopper_context(history[user], dataset.items, config.history_titles)
        lists["bert"][user] = bert_order(
            model, tokenizer, ctx, cands, dataset.items, config.max_length, config.eval_batch
        )
    result: dict[str, Any] = {
        "users": len(users),
        "candidates_per_user": config.eval_candidates,
        "history_candidates": own_items,
        "candidate_source": source.name,
        "candidate_recall": float(
            np.mean([len(set(lists["source"][u]) & truth[u]) / len(truth[u]) for u in users])
        )
        if users
        else 0.0,
    }
    if lists_out is not None:
        lists_out.update(lists)
    for name, per_user in lists.items():
        scores_k = metrics.evaluate_lists(per_user, truth, ks=(10,))
        result[name] = {"ndcg@10": scores_k["ndcg@10"], "recall@10": scores_k["recall@10"]}
    return result


# The candidate sources a learning curve can fit on the early part of the training period.
CURVE_SOURCES = ("cooccurrence", "retrieval")


def learning_curve(
    dataset: Dataset,
    train_split: Sequence[Interaction],
    config: TrainConfig,
    at_steps: Sequence[int],
    *,
    root: Path,
    negatives: str = "cooccurrence",
    lists: Sequence[str] = ("cooccurrence",),
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Validation NDCG@10 of one training schedule (``config.steps`` = the last of
    ``at_steps``) at each of ``at_steps``, trained on the early part of the training period
    and scored on up to ``config.eval_users`` shoppers of its late part. Truth: everything a
    shopper bought after the validation cut when the lists hold their own items, else their
    new items.

    Candidate sources (``CURVE_SOURCES``), all fitted on the early part only (a published
    retrieval artefact was trained on the whole training period and has seen the validation
    period): ``cooccurrence`` (basket co-occurrence) or ``retrieval`` (a two-tower model
    trained in the run over the catalog known at the cut). ``negatives`` is the source the
    training negatives come from; every checkpoint is scored on the lists of each source in
    ``lists`` (one point per step and list source), so recipes trained on different negatives
    are compared on the same lists."""
    import time

    from offline.evaluation.protocol import sample, validation_cut
    from offline.ranker.candidates import CooccurrenceCandidates, TwoTowerCandidates
    from shared.data.types import catalog_at

    steps = sorted(set(at_steps))
    if not steps or steps[0] < 1 or steps[-1] != config.steps:
        raise ValueError("curve steps must be positive and end at the schedule's last step")
    wanted = [negatives, *[name for name in lists if name != negatives]]
    unknown = [name for name in wanted if name not in CURVE_SOURCES]
    if unknown or not lists:
        raise ValueError(
            f"curve candidate sources are {', '.join(CURVE_SOURCES)} and at least one list "
            f"source is needed, got negatives {negatives!r} and lists {list(lists)}"
        )
    vcut = validation_cut(train_split)
    sources: dict[str, CandidateSource] = {}
    for name in wanted:
        if name == "cooccurrence":
            sources[name] = CooccurrenceCandidates(vcut.before)
        else:
            known = catalog_at(dataset, vcut.after[0].timestamp)
            sources[name] = TwoTowerCandidates.fit(vcut.before, known, config.seed)
    source = sources[negatives]
    pop = popularity(vcut.before)
    history = {u: list(h) for u, h in vcut.histories.items()}
    repeats = eval_history(config) > 0
    truth = {u: t if repeats else t - set(history[u]) for u, t in vcut.truth.items()}
    truth = {u: t for u, t in truth.items() if t}
    users = sample(list(truth), config.eval_users, config.seed)
    layers = "all" if config.trainable_layers < 0 else f"top {config.trainable_layers}"
    tag = f"curve-{layers.replace(' ', '')}-h{config.history_candidates}-{negatives}"
    checkpoints = root / "_checkpoints" / f"{dataset.name}-{tag}-seed{config.seed}"
    points: list[dict[str, Any]] = []
    started = time.perf_counter()
    for k, step in enumerate(steps):
        model, tokenizer, stats = train(
            dataset,
            vcut.before,
            source,
            config,
            checkpoint_dir=checkpoints,
            resume=k > 0,
            until_step=step,
            progress=progress,
        )
        trained_s = time.perf_counter() - started
        model.to("cpu")
        losses = torch.load(checkpoints / CHECKPOINT_FILE, weights_only=False)["losses"]
        for name in lists:
            result = score_lists(
                model,
                tokenizer,
                dataset,
                history,
                {u: truth[u] for u in users},
                sources[name],
                pop,
                config,
                progress=progress,
            )
            point = {
                "step": step,
                "layers": layers,
                "negatives": negatives,
                "train_history_candidates": config.history_candidates,
                "loss_last_50": float(np.mean(losses[-50:])),
                "train_s": round(trained_s, 1),
                "examples": stats["examples"],
                **result,
            }
            points.append(point)
            log.info(
                "curve point",
                extra={k: point[k] for k in ("step", "layers", "negatives", "loss_last_50")},
            )
            print(json.dumps(point), flush=True)
    return points


def curve_table(points: Sequence[dict[str, Any]]) -> str:
    """The learning curve as a markdown table."""
    lines = [
        "| layers | negatives | own items in training lists | val lists "
        "| own items in val lists | step "
        "| loss (last 50) | val shoppers | cand. recall "
        "| source NDCG@10 | popularity NDCG@10 | own items first NDCG@10 | BERT NDCG@10 "
        "| BERT R@10 | train s |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        own = f"{p['own_first']['ndcg@10']:.4f}" if "own_first" in p else "—"
        lines.append(
            f"| {p['layers']} | {p['negatives']} | {p['train_history_candidates']} "
            f"| {p['candidate_source']} | {p['history_candidates']} | {p['step']} "
            f"| {p['loss_last_50']:.3f} | {p['users']} | {p['candidate_recall']:.3f} "
            f"| {p['source']['ndcg@10']:.4f} | {p['popularity']['ndcg@10']:.4f} | {own} "
            f"| {p['bert']['ndcg@10']:.4f} | {p['bert']['recall@10']:.4f} | {p['train_s']:.0f} |"
        )
    return "\n".join(lines)


def run(
    dataset: Dataset,
    train_split: Sequence[Interaction],
    test_split: Sequence[Interaction],
    source: CandidateSource,
    config: TrainConfig,
    *,
    root: Path,
    resume: bool = False,
    until_step: int | None = None,
    version: str | None = None,
    progress: bool = True,
    gate: bool = True,
) -> Path | None:
    """Train, evaluate and write the versioned artefact; returns its folder, or None when
    ``until_step`` stopped the run before its last step (resume it later).

    LATEST moves to the new version unless ``gate`` (the default) finds it ordering the
    evaluation lists worse than the version LATEST names (offline.ranker.gate); the decision
    is in the version's ``meta["publish_gate"]``."""
    checkpoint_dir = root / "_checkpoints" / f"{dataset.name}-{source.name}-seed{config.seed}"
    model, tokenizer, stats = train(
        dataset,
        train_split,
        source,
        config,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        until_step=until_step,
        progress=progress,
    )
    if stats["steps"] < config.steps:
        log.info("stopped early; continue with --resume", extra={"step": stats["steps"]})
        return None
    model.to("cpu")
    history, truth = held_out(train_split, test_split, config)
    lists: dict[str, dict[str, list[str]]] = {}
    evaluation = score_lists(
        model,
        tokenizer,
        dataset,
        history,
        truth,
        source,
        popularity(train_split),
        config,
        progress=progress,
        lists_out=lists,
    )
    meta: dict[str, Any] = {
        "max_length": config.max_length,
        "dataset": dataset.name,
        "negatives_source": source.name,
        "train_config": asdict(config),
        "train_stats": stats,
        "metrics": evaluation,
        # The newest event trained on: a later run's gate scores this version only on a test
        # period after it (offline.ranker.gate).
        "training": {"until": max(x.timestamp for x in train_split).isoformat()},
    }
    passed = True
    if gate:
        # Here, not at the top: the gate scores with this module's functions.
        from offline.ranker.gate import champion_gate

        result = champion_gate(
            root,
            dataset,
            history,
            truth,
            lists["source"],
            lists["bert"],
            min((x.timestamp for x in test_split), default=None),
            batch=config.eval_batch,
            progress=progress,
        )
        meta["publish_gate"] = result.record()
        passed = result.passed
    folder = save_artefact(
        model, tokenizer, root, version or new_version(), meta, set_latest=passed
    )
    log.info("saved ranker", extra={"path": str(folder)})
    print(json.dumps(evaluation, indent=2))
    return folder


QUICK = {
    # A smoke run for tests and the local stack, not the recipe: top 2 layers, 8 steps.
    "trainable_layers": 2,
    "steps": 8,
    "groups_per_step": 2,
    "negatives": 3,
    "candidates": 20,
    "max_length": 48,
    "checkpoint_every": 4,
    "eval_users": 10,
    "eval_candidates": 10,
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(description="Fine-tune and evaluate the BERT ranker.")
    add_data_arguments(p)
    p.add_argument(
        "--negatives",
        choices=["auto", "retrieval", "cooccurrence"],
        default="auto",
        help="Hard-negative and evaluation candidate source; auto = retrieval if its "
        "artefact exists, else co-occurrence.",
    )
    p.add_argument("--retrieval-dir", default="var/models/retrieval")
    p.add_argument("--output", default="var/models/ranker")
    p.add_argument("--version", help="Artefact version name (default: UTC timestamp).")
    p.add_argument("--quick", action="store_true", help="Tiny run for tests and the local stack.")
    p.add_argument("--resume", action="store_true", help="Continue from the last checkpoint.")
    p.add_argument("--until-step", type=int, help="Stop (with a checkpoint) at this step.")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--steps", type=int)
    p.add_argument("--groups-per-step", type=int)
    p.add_argument("--negatives-per-positive", type=int, dest="negatives_n")
    p.add_argument("--max-length", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--head-lr", type=float)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--trainable-layers", type=int, help="Top BERT layers to tune; -1 = all.")
    p.add_argument("--candidates", type=int, help="Candidates per training cut.")
    p.add_argument("--pooling", choices=["item_mean", "mean"], help="See CrossEncoder.")
    p.add_argument(
        "--any-positive",
        action="store_true",
        help="Also train on cuts whose positive is not among the candidates.",
    )
    p.add_argument(
        "--history-candidates",
        type=int,
        help="Own newest items added to every candidate list (repeats become positives and "
        "count in the truth); 0 = new items only.",
    )
    p.add_argument(
        "--curve",
        metavar="STEPS",
        help="Comma-separated steps, e.g. 250,1000,3000: train on the early part of the "
        "training period and score these checkpoints of one schedule (--steps = the last) "
        "on its late part; writes no artefact and never reads the test period.",
    )
    p.add_argument(
        "--eval-history-candidates",
        type=int,
        help="Own items in the evaluation lists (and repeats in the truth); default: as "
        "--history-candidates.",
    )
    p.add_argument(
        "--curve-lists",
        default="cooccurrence",
        help="With --curve: comma-separated candidate sources whose validation lists score "
        "every checkpoint (cooccurrence, retrieval = a two-tower model trained in the run on "
        "the early part); --negatives picks the training negatives' source among the same "
        "(auto = cooccurrence there).",
    )
    p.add_argument("--curve-json", help="Also write the curve points to this JSON file.")
    p.add_argument(
        "--no-gate",
        action="store_true",
        help="move LATEST without comparing with the version it names (default: a version "
        "that orders the evaluation lists measurably worse is written, LATEST stays, exit 3)",
    )
    p.add_argument(
        "--promote",
        metavar="VERSION",
        help="train nothing: point LATEST under --output at this existing version (one the "
        "gate refused, or an older one to roll back to)",
    )
    p.add_argument("--eval-users", type=int)
    p.add_argument("--eval-candidates", type=int)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads.")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    from shared.data.types import temporal_split

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    if args.promote is not None:
        return _promote(args.output, args.promote)
    _check_version(args.version, args.output)
    torch.set_num_threads(args.threads)
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    overrides = {
        "steps": args.steps,
        "groups_per_step": args.groups_per_step,
        "negatives": args.negatives_n,
        "max_length": args.max_length,
        "lr": args.lr,
        "head_lr": args.head_lr,
        "checkpoint_every": args.checkpoint_every,
        "trainable_layers": args.trainable_layers,
        "candidates": args.candidates,
        "pooling": args.pooling,
        "positives_in_candidates": False if args.any_positive else None,
        "history_candidates": args.history_candidates,
        "eval_history_candidates": args.eval_history_candidates,
        "eval_users": args.eval_users,
        "eval_candidates": args.eval_candidates,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    at_steps: list[int] = []
    curve_lists: list[str] = []
    if args.curve:
        try:
            at_steps = sorted({int(x) for x in args.curve.split(",") if x.strip()})
        except ValueError:
            raise SystemExit(f"--curve takes comma-separated steps, not {args.curve!r}") from None
        if not at_steps or at_steps[0] < 1:
            raise SystemExit("--curve steps must be positive")
        curve_lists = [x.strip() for x in args.curve_lists.split(",") if x.strip()]
        bad = [x for x in curve_lists if x not in CURVE_SOURCES]
        if bad or not curve_lists:
            raise SystemExit(
                f"--curve-lists takes {', '.join(CURVE_SOURCES)}, comma-separated; got "
                f"{args.curve_lists!r}"
            )
        values["steps"] = at_steps[-1]
        if args.curve_json:
            # Made before the curve's minutes of training, so a bad path fails at once.
            Path(args.curve_json).parent.mkdir(parents=True, exist_ok=True)
    elif args.curve_json:
        raise SystemExit("--curve-json needs --curve")
    config = TrainConfig(seed=args.seed, **values)
    dataset = data_from_args(args)
    train_split, test_split = temporal_split(dataset)
    if at_steps:
        points = learning_curve(
            dataset,
            train_split,
            config,
            at_steps,
            root=Path(args.output),
            negatives="cooccurrence" if args.negatives == "auto" else args.negatives,
            lists=curve_lists,
            progress=not args.no_progress,
        )
        print(curve_table(points))
        if args.curve_json:
            Path(args.curve_json).write_text(json.dumps(points, indent=2) + "\n")
        return 0
    source = choose_source(args.negatives, dataset.name, train_split, args.retrieval_dir)
    folder = run(
        dataset,
        train_split,
        test_split,
        source,
        config,
        root=Path(args.output),
        resume=args.resume,
        until_step=args.until_step,
        version=args.version,
        progress=not args.no_progress,
        gate=not args.no_gate,
    )
    if folder is None:
        print(f"checkpointed at step {args.until_step}")
        return 0
    return _report(folder, args.output)


def _check_version(version: str | None, output: str) -> None:
    """Before the minutes of training: a usable name, and a version folder is never
    overwritten."""
    if version is None:
        return
    if not VERSION_NAME.match(version):
        raise SystemExit(f"invalid --version {version!r}: letters, digits, '.', '_' and '-'")
    if (Path(output) / version).exists():
        raise SystemExit(
            f"--version {version} already exists under {output}: versions are never "
            "overwritten, pick another name"
        )


def _promote(output: str, version: str) -> int:
    try:
        set_latest_version(output, version)
    except ValueError as exc:
        print(f"train_ranker: error: --promote: {exc}", file=sys.stderr)
        return 2
    print(f"LATEST -> {version} under {output}")
    return 0


def _report(folder: Path, output: str) -> int:
    """What the publish gate decided; 3 when it kept LATEST where it was."""
    print(f"wrote {folder}")
    decision = json.loads((folder / "meta.json").read_text()).get("publish_gate")
    if decision is None:
        print("LATEST moved (--no-gate)")
        return 0
    return report(
        decision,
        folder.name,
        f"python scripts/train_ranker.py --promote {folder.name} --output {output}",
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:]))
