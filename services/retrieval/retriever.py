"""The served index and the retrieval logic behind the RPCs; no grpc here.

``Retriever`` holds ONE reference to an immutable ``ServedIndex`` (artefact + FAISS index +
version). A request reads that reference once and uses it to the end, and a hot swap builds
the new ServedIndex completely before replacing the reference in a single assignment, so
in-flight requests finish on the old index and none sees a half-built one.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.retrieval.index import CandidateIndex, HnswParams, build_cf_index, build_index
from services.retrieval.live import EMPTY_LAYER, LiveCatalog, LiveLayer
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


class UnknownItem(LookupError):
    """The index does not hold the item, or it was withdrawn."""


@dataclass(frozen=True)
class ServedIndex:
    """One loaded version plus the live catalog's snapshot over it, never mutated after
    construction: a catalog change builds a new ServedIndex with a new ``live`` layer."""

    version: str
    artefact: RetrievalArtefact
    index: CandidateIndex
    # The collaborative-filtering index; None for a version without ALS factors.
    cf_index: CandidateIndex | None = None
    live: LiveLayer = field(default=EMPTY_LAYER)

    @property
    def kind(self) -> str:
        return self.index.kind

    @property
    def size(self) -> int:
        """Items the version or the live catalog holds, withdrawn ones included."""
        return self.index.size + len(self.live.item_ids)

    def vector(self, item_id: str, *, withdrawn: bool = False) -> np.ndarray | None:
        """The item's vector; None for an item neither held nor added, or withdrawn (unless
        ``withdrawn``: a withdrawn item still describes itself, e.g. as a similarity seed)."""
        if item_id in self.live.removed and not withdrawn:
            return None
        row = self.artefact.row(item_id)
        if row is not None:
            return self.artefact.item_vectors[row]
        return self.live.vectors.get(item_id)

    def user_vector(self, history: Sequence[str]) -> np.ndarray:
        """The user tower over trained and added items; withdrawn items still describe the
        shopper's taste, so they count here (they are only never returned)."""
        return self.artefact.user_vector(history, self.live.vectors)

    def search(
        self, vector: np.ndarray, n: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """Best ``n`` of the version's index and the added items together, never an excluded
        or withdrawn one."""
        skip = set(exclude) | self.live.removed
        found = self.index.search(vector, n, skip)
        if self.live.index is not None:
            found += self.live.search(vector, n, skip)
            found.sort(key=lambda pair: (-pair[1], pair[0]))
        return found[:n]

    def sources(self, weights: SourceWeights) -> tuple[Source, ...]:
        """The sources this version serves under ``weights`` (a 0 weight switches one off)."""
        return tuple(
            s
            for s in SOURCE_ORDER
            if weights.of(s) > 0 and (s is not Source.COLLABORATIVE or self.cf_index is not None)
        )


def with_live(
    served: ServedIndex, catalog: LiveCatalog, *, incremental: bool = False
) -> ServedIndex:
    """``served`` with ``catalog``'s snapshot projected with its version's title tower;
    ``incremental``: reuse ``served``'s own live vectors for unchanged items (same version)."""
    previous = served.live if incremental else None
    return dataclasses.replace(served, live=catalog.layer_for(served.artefact, previous))


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
        out.append((item, score, served.vector(item) if include else None))
    return out


def source_lists(
    served: ServedIndex,
    history: Sequence[str],
    user_vector: np.ndarray,
    n: int,
    excluded: set[str],
    weights: SourceWeights,
    history_decay: float = DEFAULT_HISTORY_DECAY,
) -> dict[Source, list[tuple[str, float]]]:
    """Each enabled source's top ``n`` for a history with at least one known item;
    ``user_vector`` is the two-tower user vector of that history (over trained and added
    items), ``excluded`` includes the withdrawn items."""
    wanted = served.sources(weights)
    lists: dict[Source, list[tuple[str, float]]] = {}
    if Source.TWO_TOWER in wanted:
        lists[Source.TWO_TOWER] = served.search(user_vector, n, excluded)
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
        # Trained and added items alike; withdrawn ones are in ``excluded``.
        known = [i for i in history if served.vector(i, withdrawn=True) is not None]
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
    excluded = set(exclude) | served.live.removed
    try:
        vector = served.user_vector(history)
    except ColdStartError:
        scored = [(item, 0.0) for item in served.artefact.catalog_items(n, excluded)]
        return Retrieval(_with_embeddings(served, scored, include_embeddings), served.version, True)
    weights = weights or SourceWeights()
    merged: list[MergedCandidate] = merge(
        source_lists(served, history, vector, n, excluded, weights, history_decay), weights, n
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
    return _two_tower_only(served, served.search(vector, n, set(exclude)), include_embeddings)


def retrieve_similar(
    served: ServedIndex,
    item_id: str,
    n: int,
    exclude: Collection[str] = (),
    include_embeddings: bool = False,
) -> Retrieval:
    """The ``n`` items nearest to ``item_id``'s own vector (inner product of unit vectors,
    i.e. cosine), the item itself and withdrawn items left out. A withdrawn seed still has
    neighbours (the product page of an item out of stock shows what is in stock); raises
    UnknownItem for an item the index never held."""
    vector = served.vector(item_id, withdrawn=True)
    if vector is None:
        raise UnknownItem(item_id)
    scored = served.search(vector, n, {*exclude, item_id})
    return _two_tower_only(served, scored, include_embeddings)


def _two_tower_only(
    served: ServedIndex, scored: list[tuple[str, float]], include_embeddings: bool
) -> Retrieval:
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
