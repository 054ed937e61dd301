"""The served index and the retrieval logic behind the RPCs; no grpc here.

``Retriever`` holds ONE reference to an immutable ``ServedIndex`` (artefact + FAISS index +
version). A request reads that reference once and uses it to the end, and a hot swap builds
the new ServedIndex completely before replacing the reference in a single assignment, so
in-flight requests finish on the old index and none sees a half-built one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.retrieval.index import CandidateIndex, HnswParams, build_cf_index, build_index
from services.retrieval.sources import (
    DEFAULT_HISTORY_DECAY,
    SOURCE_ORDER,
    MergedCandidate,
    Source,
    SourceHit,
    SourceWeights,
    history_candidates,
    merge,
)
from shared.artefacts.retrieval import (
    ColdStartError,
    RetrievalArtefact,
    load_artefact,
    resolve_version,
)

log = logging.getLogger(__name__)


class NotLoaded(RuntimeError):
    """No index version has been loaded yet."""


@dataclass(frozen=True)
class ServedIndex:
    """One loaded version, never mutated after construction."""

    version: str
    artefact: RetrievalArtefact
    index: CandidateIndex
    # The collaborative-filtering index; None for a version without ALS factors.
    cf_index: CandidateIndex | None = None

    @property
    def kind(self) -> str:
        return self.index.kind

    def sources(self, weights: SourceWeights) -> tuple[Source, ...]:
        """The sources this version serves under ``weights`` (a 0 weight switches one off)."""
        return tuple(
            s
            for s in SOURCE_ORDER
            if weights.of(s) > 0 and (s is not Source.COLLABORATIVE or self.cf_index is not None)
        )


@dataclass(frozen=True)
class Retrieval:
    """Candidates best first, as (item id, score, embedding or None); ``hits[i]`` names the
    sources of ``items[i]`` with their own scores and ranks (empty on a cold start)."""

    items: list[tuple[str, float, np.ndarray | None]]
    version: str
    cold_start: bool
    hits: list[tuple[SourceHit, ...]] = field(default_factory=list)


def load_served(
    root: Path | str, version: str, kind: str, hnsw: HnswParams | None = None
) -> ServedIndex:
    """Resolve ("" = LATEST), read and index a version. Blocking: run it in an executor."""
    path = resolve_version(root, version)
    artefact = load_artefact(path)
    index = build_index(artefact, kind, hnsw, graph_dir=path)
    cf_index = build_cf_index(artefact, kind, hnsw, graph_dir=path)
    log.info(
        "index built",
        extra={
            "index_version": artefact.version,
            "kind": kind,
            "items": index.size,
            "collaborative": cf_index is not None,
        },
    )
    return ServedIndex(artefact.version, artefact, index, cf_index)


def _with_embeddings(
    served: ServedIndex, scored: Sequence[tuple[str, float]], include: bool
) -> list[tuple[str, float, np.ndarray | None]]:
    out: list[tuple[str, float, np.ndarray | None]] = []
    for item, score in scored:
        vec = None
        if include:
            row = served.artefact.row(item)
            vec = served.artefact.item_vectors[row] if row is not None else None
        out.append((item, score, vec))
    return out


def source_lists(
    served: ServedIndex,
    history: Sequence[str],
    n: int,
    excluded: set[str],
    weights: SourceWeights,
    history_decay: float = DEFAULT_HISTORY_DECAY,
) -> dict[Source, list[tuple[str, float]]]:
    """Each enabled source's top ``n`` for a history with at least one known item."""
    wanted = served.sources(weights)
    lists: dict[Source, list[tuple[str, float]]] = {}
    if Source.TWO_TOWER in wanted:
        lists[Source.TWO_TOWER] = served.index.search(
            served.artefact.user_vector(history), n, excluded
        )
    if Source.COLLABORATIVE in wanted and served.cf_index is not None:
        try:
            user = served.artefact.cf_user_vector(history)
        except ColdStartError:
            # No history item has ALS factors (e.g. only items added after training):
            # the other sources still answer.
            user = None
        if user is not None:
            lists[Source.COLLABORATIVE] = served.cf_index.search(user, n, excluded)
    if Source.HISTORY in wanted:
        known = served.artefact.known(history)
        lists[Source.HISTORY] = history_candidates(known, n, excluded, history_decay)
    return lists


def retrieve_for_history(
    served: ServedIndex,
    history: Sequence[str],
    n: int,
    exclude: Collection[str] = (),
    include_embeddings: bool = False,
    weights: SourceWeights | None = None,
    history_decay: float = DEFAULT_HISTORY_DECAY,
) -> Retrieval:
    """Candidates for a history (most recent first): every enabled source's top ``n``,
    merged (``services.retrieval.sources.merge``) into ``n``. With no known item, the
    cold-start answer: the catalog in item-id order, every score 0. The artefact's training
    counts are raw (never noised), so they neither choose, order nor score these items; the
    orchestrator replaces this list by the DP popularity release when one exists."""
    excluded = set(exclude)
    if not served.artefact.known(history):
        scored = [(item, 0.0) for item in served.artefact.catalog_items(n, excluded)]
        return Retrieval(_with_embeddings(served, scored, include_embeddings), served.version, True)
    weights = weights or SourceWeights()
    merged: list[MergedCandidate] = merge(
        source_lists(served, history, n, excluded, weights, history_decay), weights, n
    )
    scored = [(c.item_id, c.score) for c in merged]
    return Retrieval(
        _with_embeddings(served, scored, include_embeddings),
        served.version,
        False,
        [c.hits for c in merged],
    )


def retrieve_for_vector(
    served: ServedIndex,
    vector: np.ndarray,
    n: int,
    exclude: Collection[str] = (),
    include_embeddings: bool = False,
) -> Retrieval:
    """Candidates nearest to a ready user vector in the two-tower embedding space (the only
    source a vector query has)."""
    scored = served.index.search(vector, n, set(exclude))
    hits: list[tuple[SourceHit, ...]] = [
        (SourceHit(Source.TWO_TOWER, s, rank),) for rank, (_, s) in enumerate(scored, 1)
    ]
    return Retrieval(
        _with_embeddings(served, scored, include_embeddings), served.version, False, hits
    )


class Retriever:
    """The current ServedIndex behind one reference, swapped atomically."""

    def __init__(self) -> None:
        self._served: ServedIndex | None = None
        self._swap = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._served is not None

    def current(self) -> ServedIndex:
        served = self._served
        if served is None:
            raise NotLoaded("no index version is loaded yet")
        return served

    def swap(self, served: ServedIndex) -> str:
        """Serve ``served`` from now on; returns the previous version ("" if none)."""
        with self._swap:
            previous = self._served
            self._served = served
        log.info(
            "index swapped",
            extra={
                "previous_version": previous.version if previous else "",
                "index_version": served.version,
            },
        )
        return previous.version if previous else ""
