"""Two-tower retrieval model training in torch; writes a ``shared.artefacts.retrieval`` artefact.

Item tower: a learned ID embedding plus a linear projection of the item title's frozen
all-MiniLM-L6-v2 embedding, L2-normalised. ID embeddings start at zero and are randomly
dropped during training (as DropoutNet does for cold start; Volkovs, Yu & Poutanen,
NeurIPS 2017), so the text path alone must place an item well: an item with no interaction
keeps a zero ID embedding and is retrievable from its title.

User tower: recency-weighted mean pooling of the user's recent item vectors followed by a
linear layer (the history-pooling user tower of Covington, Adams & Sargin, "Deep Neural
Networks for YouTube Recommendations", RecSys 2016). It is a function of item vectors only,
so the service computes a user vector from a list of recent items with numpy, no torch.

Loss: sampled softmax over in-batch negatives with the logQ correction for the popularity
bias of in-batch sampling (Yi et al., "Sampling-Bias-Corrected Neural Modeling for Large
Corpus Item Recommendations", RecSys 2019); other rows whose target is the same item are
masked out rather than treated as negatives.

Training sees only the interactions passed in, which callers take from the TRAIN side of
shared.data.temporal_split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shared.artefacts.retrieval import ARTEFACT_FORMAT, RetrievalArtefact, normalise
from shared.data.types import CatalogItem, Interaction


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the two-tower model; stored in the artefact's meta.json."""

    dim: int = 64
    # Chosen on a validation split (the last 20% of the training period) of Online Retail
    # and the synthetic data: more epochs overfit the sparse histories (docs/retrieval.md).
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 5e-3
    weight_decay: float = 1e-6
    temperature: float = 0.2
    max_history: int = 20
    recency_decay: float = 0.85
    id_dropout: float = 0.5
    logq_weight: float = 1.0
    text_max_length: int = 32

    def __post_init__(self) -> None:
        if self.dim < 2 or self.epochs < 1 or self.batch_size < 2 or self.max_history < 1:
            raise ValueError("dim, epochs, batch_size and max_history must be >= 2, 1, 2 and 1")
        if not 0.0 < self.recency_decay <= 1.0:
            raise ValueError("recency_decay must be in (0, 1]")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError("id_dropout must be in [0, 1)")
        if self.logq_weight < 0:
            raise ValueError("logq_weight must be >= 0 (0 disables the correction)")
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise ValueError("temperature and learning_rate must be positive")


def user_sequences(interactions: Sequence[Interaction]) -> dict[str, list[str]]:
    """Items per user, oldest first, consecutive repeats of one item collapsed."""
    out: dict[str, list[str]] = {}
    for x in sorted(interactions, key=lambda x: (x.timestamp, x.user_id, x.item_id)):
        seq = out.setdefault(x.user_id, [])
        if not seq or seq[-1] != x.item_id:
            seq.append(x.item_id)
    return out


def recent_histories(interactions: Sequence[Interaction]) -> dict[str, list[str]]:
    """Items per user, MOST RECENT FIRST, as the service and the user tower take them."""
    return {u: seq[::-1] for u, seq in user_sequences(interactions).items()}


def training_examples(
    sequences: Mapping[str, Sequence[str]], row: Mapping[str, int], max_history: int
) -> tuple[np.ndarray, np.ndarray]:
    """(histories (E, max_history) padded with -1, most recent first; targets (E,)).

    Each item after a user's first is a target; the items before it are its history.
    """
    hists: list[list[int]] = []
    targets: list[int] = []
    for user in sorted(sequences):
        rows = [row[i] for i in sequences[user] if i in row]
        for t in range(1, len(rows)):
            past = rows[max(0, t - max_history) : t][::-1]
            hists.append(past + [-1] * (max_history - len(past)))
            targets.append(rows[t])
    if not targets:
        raise ValueError("no user has two interactions with catalog items; nothing to learn")
    return np.asarray(hists, dtype=np.int64), np.asarray(targets, dtype=np.int64)


# --------------------------------------------------------------------------- torch model


def _build_model(n_items: int, text: np.ndarray, config: TrainConfig) -> Any:
    import torch
    from torch import nn

    class TwoTower(nn.Module):
        text: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("text", torch.from_numpy(text))
            self.item_id = nn.Embedding(n_items, config.dim)
            nn.init.zeros_(self.item_id.weight)
            self.text_proj = nn.Linear(text.shape[1], config.dim)
            self.user = nn.Linear(config.dim, config.dim)
            # Identity start: the first user vector is the pooled history itself, a sound
            # item-to-item baseline the layer then refines.
            nn.init.eye_(self.user.weight)
            nn.init.zeros_(self.user.bias)

        def items(self, rows: torch.Tensor, id_keep: torch.Tensor | None = None) -> torch.Tensor:
            ids = self.item_id(rows)
            if id_keep is not None:
                ids = ids * id_keep.unsqueeze(-1)
            return nn.functional.normalize(ids + self.text_proj(self.text[rows]), dim=-1)

        def users(self, pooled: torch.Tensor) -> torch.Tensor:
            return nn.functional.normalize(self.user(pooled), dim=-1)

    return TwoTower()


def _batch_loss(
    model: Any,
    hist: Any,
    target: Any,
    log_q: Any,
    config: TrainConfig,
    generator: Any,
) -> Any:
    import torch

    mask = hist >= 0
    uniq, inverse = torch.unique(torch.cat([hist[mask], target]), return_inverse=True)
    keep = None
    if config.id_dropout > 0:
        keep = (torch.rand(len(uniq), generator=generator) >= config.id_dropout).float()
    vecs = model.items(uniq, keep)
    n_hist = int(mask.sum())
    hist_vecs = torch.zeros(*hist.shape, vecs.shape[1])
    hist_vecs[mask] = vecs[inverse[:n_hist]]
    positions = torch.arange(hist.shape[1], dtype=torch.float32)
    weights = (config.recency_decay**positions).unsqueeze(0) * mask.float()
    pooled = (weights.unsqueeze(-1) * hist_vecs).sum(1) / weights.sum(1, keepdim=True)
    users = model.users(pooled)
    target_vecs = vecs[inverse[n_hist:]]
    logits = users @ target_vecs.T / config.temperature
    if config.logq_weight > 0:
        logits = logits - config.logq_weight * log_q[target].unsqueeze(0)
    same = target.unsqueeze(0) == target.unsqueeze(1)
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(len(target))
    return torch.nn.functional.cross_entropy(logits, labels)


def train(
    interactions: Sequence[Interaction],
    catalog: Mapping[str, CatalogItem],
    config: TrainConfig | None = None,
    seed: int = 0,
    *,
    dataset: str = "custom",
    title_vectors: np.ndarray | None = None,
    text_cache_dir: Path | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RetrievalArtefact:
    """Train the two-tower model on ``interactions`` (the training split) over ``catalog``.

    Every catalog item gets a vector, also the ones without interactions (from their title).
    ``title_vectors`` (len(catalog), 384), in sorted item id order, skips the text encoder;
    otherwise titles are encoded with all-MiniLM-L6-v2 and cached in ``text_cache_dir``
    (default var/cache/retrieval/titles). The same inputs and seed give the same artefact.
    """
    import torch

    from offline.retrieval.text import DEFAULT_CACHE_DIR, title_embeddings

    config = config or TrainConfig()
    item_ids = sorted(catalog)
    if not item_ids:
        raise ValueError("the catalog is empty")
    row = {item: i for i, item in enumerate(item_ids)}
    if title_vectors is None:
        title_vectors = title_embeddings(
            [catalog[i].title for i in item_ids],
            cache_dir=text_cache_dir or DEFAULT_CACHE_DIR,
            max_length=config.text_max_length,
        )
    if title_vectors.shape[0] != len(item_ids):
        raise ValueError(f"{title_vectors.shape[0]} title vectors for {len(item_ids)} items")
    text = np.ascontiguousarray(title_vectors, dtype=np.float32)

    sequences = user_sequences(interactions)
    hists, targets = training_examples(sequences, row, config.max_history)
    counts = np.bincount(targets, minlength=len(item_ids)).astype(np.float64)
    popularity = np.zeros(len(item_ids), dtype=np.int64)
    for x in interactions:
        r = row.get(x.item_id)
        if r is not None:
            popularity[r] += 1

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = _build_model(len(item_ids), text, config)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    # logQ: the probability that an item is some row's target, i.e. appears in a batch.
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / counts.sum()).astype(np.float32))
    hist_t = torch.from_numpy(hists)
    target_t = torch.from_numpy(targets)
    losses: list[float] = []
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(target_t), generator=generator)
        total, batches = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            if len(idx) < 2:
                continue
            loss = _batch_loss(model, hist_t[idx], target_t[idx], log_q, config, generator)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item()
            batches += 1
        losses.append(total / max(batches, 1))
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])

    model.eval()
    with torch.no_grad():
        vectors = model.items(torch.arange(len(item_ids))).numpy().astype(np.float32)
        state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    created = now()
    meta: dict[str, Any] = {
        "format": ARTEFACT_FORMAT,
        "dataset": dataset,
        "created_at": created.isoformat(),
        "seed": seed,
        "dimension": config.dim,
        "items": len(item_ids),
        "items_with_interactions": int((popularity > 0).sum()),
        "training": {
            "config": asdict(config),
            "interactions": len(interactions),
            # The newest event trained on: the publish gate compares a new version with this
            # one only on a test period that starts after it (offline.retrieval.gate).
            "until": max(x.timestamp for x in interactions).isoformat(),
            "users": len(sequences),
            "examples": len(targets),
            "epoch_losses": losses,
            "text_model": "all-MiniLM-L6-v2",
        },
        "metrics": {},
    }
    return RetrievalArtefact(
        item_ids=item_ids,
        item_vectors=normalise(vectors),
        user_weight=state["user.weight"],
        user_bias=state["user.bias"],
        recency_decay=config.recency_decay,
        max_history=config.max_history,
        popularity=popularity,
        meta=meta,
        text_weight=state["text_proj.weight"],
        text_bias=state["text_proj.bias"],
    )
