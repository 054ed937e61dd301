"""Candidate lists for training negatives and for evaluation: what the ranker re-ranks.

Two sources, chosen by the caller:

- ``RetrievalCandidates``: the project's retrieval artefact (shared.artefacts.retrieval, FAISS over
  learned item vectors), the same candidates the ranker sees in production;
  ``TwoTowerCandidates.fit`` trains such a model in the run on a given period (the learning
  curve's early part, which no published artefact may have seen).
- ``CooccurrenceCandidates``: item-to-item basket co-occurrence (cosine-normalised counts,
  as in Sarwar et al., "Item-based collaborative filtering recommendation algorithms",
  WWW 2001), backed off to popularity. Used when no retrieval artefact exists.

Both exclude the shopper's own history: the ranker is evaluated on discovering new items.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from shared.artefacts.retrieval import (
    ColdStartError,
    RetrievalArtefact,
    artefact_dir,
    load_artefact,
)
from shared.data.types import EVENT_PURCHASE, CatalogItem, Interaction

# Purchases closer than this belong to one basket (an invoice in Online Retail has a single
# timestamp; a synthetic session spreads its purchases over a few minutes).
BASKET_GAP = timedelta(minutes=30)
# Very large baskets add quadratic pairs and little signal; only their first items count.
MAX_BASKET_FOR_PAIRS = 50


class CandidateSource(Protocol):
    """Ranked candidate item ids for a history (newest first)."""

    name: str

    def candidates(self, history: Sequence[str], n: int) -> list[str]: ...


def baskets(interactions: Iterable[Interaction]) -> dict[str, list[list[str]]]:
    """Purchases per user grouped into baskets, oldest basket first, items distinct."""
    per_user: dict[str, list[Interaction]] = defaultdict(list)
    for x in interactions:
        if x.event_type == EVENT_PURCHASE:
            per_user[x.user_id].append(x)
    out: dict[str, list[list[str]]] = {}
    for user, events in per_user.items():
        events.sort(key=lambda x: x.timestamp)
        groups: list[list[str]] = []
        last = None
        for x in events:
            if last is None or x.timestamp - last > BASKET_GAP:
                groups.append([])
            if x.item_id not in groups[-1]:
                groups[-1].append(x.item_id)
            last = x.timestamp
        out[user] = groups
    return out


def popularity(interactions: Iterable[Interaction]) -> Counter[str]:
    """Distinct purchasers per item."""
    pairs = {(x.user_id, x.item_id) for x in interactions if x.event_type == EVENT_PURCHASE}
    return Counter(item for _, item in pairs)


class CooccurrenceCandidates:
    """Basket co-occurrence neighbours of the history items, then the most popular items."""

    name = "cooccurrence"

    def __init__(self, train: Sequence[Interaction]) -> None:
        self.popularity = popularity(train)
        # Ties by item id: most_common() keeps insertion order, which follows set iteration
        # (string hashing differs between processes), so runs would differ.
        self._popular = sorted(self.popularity, key=lambda i: (-self.popularity[i], i))
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        occurrences: Counter[str] = Counter()
        for groups in baskets(train).values():
            for basket in groups:
                items = basket[:MAX_BASKET_FOR_PAIRS]
                occurrences.update(items)
                for a in items:
                    for b in items:
                        if a != b:
                            counts[a][b] += 1
        self._neighbours = {
            a: {b: c / math.sqrt(occurrences[a] * occurrences[b]) for b, c in row.items()}
            for a, row in counts.items()
        }

    def candidates(self, history: Sequence[str], n: int) -> list[str]:
        return [item for item, _ in self.scored(history, n)]

    def scored(
        self, history: Sequence[str], n: int, *, exclude_history: bool = True
    ) -> list[tuple[str, float]]:
        """The top ``n`` (item, co-occurrence score), popular items (score 0) filling up.

        ``exclude_history=False`` lets the shopper's own items compete like any other (the
        serving retrieval does not exclude them either): the learned ranking model is then
        trained on repeat candidates and learns from data whether they are worth showing."""
        seen = set(history) if exclude_history else set()
        scores: dict[str, float] = defaultdict(float)
        # Newer history items weigh more: the next basket tends to follow the latest ones.
        for rank, item in enumerate(history):
            weight = 1.0 / (1.0 + rank)
            for other, sim in self._neighbours.get(item, {}).items():
                if other not in seen:
                    scores[other] += weight * sim
        ranked = sorted(scores, key=lambda i: (-scores[i], i))[:n]
        out = [(i, scores[i]) for i in ranked]
        if len(out) < n:
            chosen = set(ranked) | seen
            out += [(i, 0.0) for i in self._popular if i not in chosen][: n - len(out)]
        return out


class TwoTowerCandidates:
    """A two-tower model's candidates: its user tower over the history, exact FAISS search,
    popular items for a history it does not know."""

    name = "retrieval"

    def __init__(self, artefact: RetrievalArtefact) -> None:
        # FAISS is imported only when retrieval candidates are asked for.
        from services.retrieval.index import build_index

        self.artefact = artefact
        self.dataset = str(artefact.meta.get("dataset", ""))
        self.index = build_index(artefact, kind="flat")

    @classmethod
    def fit(
        cls, interactions: Sequence[Interaction], catalog: Mapping[str, CatalogItem], seed: int
    ) -> TwoTowerCandidates:
        """A two-tower model trained here on ``interactions`` only, with the retrieval
        training's defaults: candidates for a period no published artefact may have seen
        (a validation cut's early part)."""
        from offline.retrieval.training import train

        return cls(train(interactions, catalog, seed=seed, dataset="in-run"))

    def candidates(self, history: Sequence[str], n: int) -> list[str]:
        seen = set(history)
        try:
            vector = self.artefact.user_vector(list(history))
        except ColdStartError:
            return list(self.artefact.popular_items(n, exclude=seen))
        return [item for item, _ in self.index.search(vector, n, exclude=seen)]


class RetrievalCandidates(TwoTowerCandidates):
    """The retrieval service's published artefact (``var/models/retrieval`` or a version)."""

    def __init__(self, path: Path | str) -> None:
        folder = artefact_dir(path)
        super().__init__(load_artefact(folder))
        self.version = folder.name


def choose_source(
    kind: str,
    dataset: str,
    train: Sequence[Interaction],
    retrieval_root: Path | str = "var/models/retrieval",
) -> CandidateSource:
    """``retrieval``, ``cooccurrence``, or ``auto``: retrieval when a published artefact was
    trained on the same dataset, otherwise co-occurrence."""
    if kind == "cooccurrence":
        return CooccurrenceCandidates(train)
    if kind == "retrieval":
        return RetrievalCandidates(retrieval_root)
    if kind != "auto":
        raise ValueError(f"unknown candidate source {kind!r}")
    root = Path(retrieval_root)
    if (root / "LATEST").exists() or (root / "meta.json").exists():
        source = RetrievalCandidates(root)
        if source.dataset == dataset:
            return source
    return CooccurrenceCandidates(train)
