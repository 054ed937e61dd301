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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.retrieval.index import CandidateIndex, HnswParams, build_index
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

    @property
    def kind(self) -> str:
        return self.index.kind


@dataclass(frozen=True)
class Retrieval:
    """Candidates best first, as (item id, score, embedding or None)."""

    items: list[tuple[str, float, np.ndarray | None]]
    version: str
    cold_start: bool


def load_served(
    root: Path | str, version: str, kind: str, hnsw: HnswParams | None = None
) -> ServedIndex:
    """Resolve ("" = LATEST), read and index a version. Blocking: run it in an executor."""
    path = resolve_version(root, version)
    artefact = load_artefact(path)
    index = build_index(artefact, kind, hnsw, graph_dir=path)
    log.info(
        "index built",
        extra={"index_version": artefact.version, "kind": kind, "items": index.size},
    )
    return ServedIndex(artefact.version, artefact, index)


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


def retrieve_for_history(
    served: ServedIndex,
    history: Sequence[str],
    n: int,
    exclude: Collection[str] = (),
    include_embeddings: bool = False,
) -> Retrieval:
    """Candidates for a history (most recent first). With no known item, the cold-start
    answer: the catalog in item-id order, every score 0. The artefact's training counts are
    raw (never noised), so they neither choose, order nor score these items; the orchestrator
    replaces this list by the DP popularity release when one exists."""
    excluded = set(exclude)
    try:
        vector = served.artefact.user_vector(history)
    except ColdStartError:
        scored = [(item, 0.0) for item in served.artefact.catalog_items(n, excluded)]
        return Retrieval(_with_embeddings(served, scored, include_embeddings), served.version, True)
    scored = served.index.search(vector, n, excluded)
    return Retrieval(_with_embeddings(served, scored, include_embeddings), served.version, False)


def retrieve_for_vector(
    served: ServedIndex,
    vector: np.ndarray,
    n: int,
    exclude: Collection[str] = (),
    include_embeddings: bool = False,
) -> Retrieval:
    """Candidates nearest to a ready user vector in the index's embedding space."""
    scored = served.index.search(vector, n, set(exclude))
    return Retrieval(_with_embeddings(served, scored, include_embeddings), served.version, False)


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
