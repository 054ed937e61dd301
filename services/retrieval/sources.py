"""Candidate sources and their merge into one list; no grpc, no FAISS here.

Three sources answer a history query (docs/retrieval.md, "Candidate sources"):

- ``TWO_TOWER``: the two-tower index, nearest items to the user tower's vector;
- ``COLLABORATIVE``: the implicit-ALS index, items with the largest inner product with the
  user factor folded in from the same history (``shared.artefacts.retrieval.CollaborativeFactors``);
- ``HISTORY``: the shopper's own items, by recency-weighted count (repeat purchases are real
  in retail; whether they should be shown is the ranker's decision, on its features).

``merge`` fuses the ranked lists by weighted reciprocal-rank fusion (Cormack, Clarke &
Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and individual Rank Learning
Methods", SIGIR 2009): ``fused(i) = sum_s w_s / (k + rank_s(i))``. Ranks, not scores, because
the sources' scores live on unrelated scales (a cosine, an unbounded ALS inner product, a
count); the weights are chosen on a validation cut (offline.retrieval.sources).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class Source(enum.Enum):
    """Where a candidate came from; the value is the label in spans and offline tables."""

    TWO_TOWER = "two_tower"
    COLLABORATIVE = "collaborative"
    HISTORY = "history"


# The order sources are listed in (GetIndexInfo, ties in a candidate's hit list).
SOURCE_ORDER: tuple[Source, ...] = (Source.TWO_TOWER, Source.COLLABORATIVE, Source.HISTORY)
DEFAULT_RRF_K = 60.0
# A history item's score is the sum of decay**position over its occurrences (not tuned).
DEFAULT_HISTORY_DECAY = 0.9


@dataclass(frozen=True)
class SourceHit:
    """What one source said about a candidate: its own score and 1-based rank."""

    source: Source
    score: float
    rank: int


@dataclass(frozen=True)
class MergedCandidate:
    """One merged candidate: the score the list is ordered by and every source that returned
    it, strongest contribution first."""

    item_id: str
    score: float
    hits: tuple[SourceHit, ...]

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(h.source for h in self.hits)


@dataclass(frozen=True)
class SourceWeights:
    """The fusion weight of each source (0 switches a source off) and the RRF constant k.

    The defaults are the best Recall@100 cell of a validation cut inside Online Retail's
    training period (scripts/eval_retrieval_sources.py; docs/retrieval.md, "Candidate
    sources"); the service's settings take them from here."""

    two_tower: float = 1.0
    collaborative: float = 0.5
    history: float = 0.5
    rrf_k: float = DEFAULT_RRF_K

    def __post_init__(self) -> None:
        if min(self.two_tower, self.collaborative, self.history) < 0:
            raise ValueError("source weights must be >= 0")
        if self.two_tower + self.collaborative + self.history <= 0:
            raise ValueError("at least one source needs a positive weight")
        if self.rrf_k < 0:
            raise ValueError("rrf_k must be >= 0")

    def of(self, source: Source) -> float:
        return {
            Source.TWO_TOWER: self.two_tower,
            Source.COLLABORATIVE: self.collaborative,
            Source.HISTORY: self.history,
        }[source]


def history_candidates(
    history: Sequence[str],
    n: int,
    exclude: set[str] | frozenset[str] = frozenset(),
    decay: float = DEFAULT_HISTORY_DECAY,
) -> list[tuple[str, float]]:
    """The shopper's own items (history most recent first), each scored by the sum of
    ``decay ** position`` over its occurrences; best first, ties by the latest occurrence."""
    scores: dict[str, float] = {}
    weight = 1.0
    for item in history:
        if item not in exclude:
            scores[item] = scores.get(item, 0.0) + weight
        weight *= decay
    # dicts keep first-insertion order = most recent first, so a stable sort breaks ties by it
    return sorted(scores.items(), key=lambda kv: -kv[1])[:n]


def merge(
    lists: Mapping[Source, Sequence[tuple[str, float]]],
    weights: SourceWeights,
    n: int,
) -> list[MergedCandidate]:
    """The top ``n`` of the sources' lists (each best first) by weighted RRF, one entry per
    item. When a single source answered, its own scores are kept, so a two-tower-only answer
    is exactly the two-tower list with its inner products."""
    answered = [s for s in SOURCE_ORDER if lists.get(s) and weights.of(s) > 0]
    hits: dict[str, list[SourceHit]] = {}
    fused: dict[str, float] = {}
    for source in answered:
        w = weights.of(source)
        for rank, (item, score) in enumerate(lists[source], start=1):
            hits.setdefault(item, []).append(SourceHit(source, float(score), rank))
            fused[item] = fused.get(item, 0.0) + w / (weights.rrf_k + rank)
    single = len(answered) == 1

    def strength(hit: SourceHit) -> float:
        return weights.of(hit.source) / (weights.rrf_k + hit.rank)

    def key(item: str) -> tuple[float, int, str]:
        return (-fused[item], min(h.rank for h in hits[item]), item)

    out: list[MergedCandidate] = []
    for item in sorted(fused, key=key)[:n]:
        item_hits = tuple(sorted(hits[item], key=lambda h: -strength(h)))
        score = item_hits[0].score if single else fused[item]
        out.append(MergedCandidate(item, score, item_hits))
    return out
