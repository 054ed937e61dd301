"""FAISS candidate indexes over L2-normalised item vectors, searched by inner product.

Two kinds, chosen by configuration:

- ``flat``: ``IndexFlatIP``, exact maximum inner product search. Right for catalogs up to a
  few hundred thousand items and the reference that approximate indexes are measured against.
- ``hnsw``: ``IndexHNSWFlat`` with the inner-product metric, the graph index of Malkov &
  Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
  Navigable Small World graphs" (TPAMI 2018). ``ef_search`` trades recall for latency;
  scripts/bench_faiss.py measures that trade on 1M vectors.

Searches are read-only, so one index may serve concurrent threads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import faiss
import numpy as np

if TYPE_CHECKING:
    from shared.artefacts.retrieval import RetrievalArtefact

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw"]
INDEX_KINDS: tuple[str, ...] = ("flat", "hnsw")


@dataclass(frozen=True)
class HnswParams:
    """HNSW graph degree and beam widths (Malkov & Yashunin 2018, section 4)."""

    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    def __post_init__(self) -> None:
        if self.m < 2 or self.ef_construction < 1 or self.ef_search < 1:
            raise ValueError("HNSW needs m >= 2, ef_construction >= 1 and ef_search >= 1")


def make_faiss_index(vectors: np.ndarray, kind: str, hnsw: HnswParams | None = None) -> faiss.Index:
    """A populated FAISS inner-product index of ``kind`` over ``vectors`` (n, d) float32."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {INDEX_KINDS}")
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError("vectors must be a non-empty (n, d) matrix")
    dim = int(data.shape[1])
    index: faiss.Index
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        params = hnsw or HnswParams()
        index = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_search
    index.add(data)
    return index


def hnsw_file_name(params: HnswParams, prefix: str = "index") -> str:
    """Graph file name inside a version folder; efSearch is a search-time knob, not part of it.
    ``prefix`` tells the indexes of one version apart (``index`` two-tower, ``als-index``)."""
    return f"{prefix}-hnsw-m{params.m}-efc{params.ef_construction}.faiss"


def _read_graph(path: Path, n: int, dim: int) -> faiss.Index | None:
    try:
        index = faiss.read_index(str(path))
    except RuntimeError:
        log.warning("unreadable HNSW file; rebuilding", extra={"file": path.name})
        return None
    if index.ntotal != n or index.d != dim:
        log.warning("HNSW file does not match the vectors; rebuilding", extra={"file": path.name})
        return None
    return index


def _write_graph(index: faiss.Index, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
    except (OSError, RuntimeError):
        # A read-only artefact volume only costs a rebuild at the next start.
        log.warning("could not save the HNSW graph", extra={"file": path.name})


class CandidateIndex:
    """Item ids plus a FAISS index over their vectors; row i of the index is ``item_ids[i]``."""

    def __init__(
        self,
        item_ids: Sequence[str],
        vectors: np.ndarray,
        kind: str = "flat",
        hnsw: HnswParams | None = None,
        graph_dir: Path | None = None,
        graph_prefix: str = "index",
    ) -> None:
        """``graph_dir``: where an HNSW graph is read from when present and saved after a build,
        because building one over 1M items takes many minutes. Only for immutable vectors."""
        if len(item_ids) != len(vectors):
            raise ValueError(f"{len(item_ids)} item ids but {len(vectors)} vectors")
        if len(set(item_ids)) != len(item_ids):
            raise ValueError("item ids must be unique")
        self.kind = kind
        self.item_ids = list(item_ids)
        self._row = {item: i for i, item in enumerate(self.item_ids)}
        self.hnsw = (hnsw or HnswParams()) if kind == "hnsw" else None
        self.dimension = int(vectors.shape[1])
        graph = None
        if self.hnsw is not None and graph_dir is not None:
            graph = graph_dir / hnsw_file_name(self.hnsw, graph_prefix)
        index = (
            _read_graph(graph, len(item_ids), self.dimension) if graph and graph.exists() else None
        )
        if index is None:
            index = make_faiss_index(vectors, kind, self.hnsw)
            if graph is not None:
                _write_graph(index, graph)
        self._index = index

    @property
    def size(self) -> int:
        return len(self.item_ids)

    def search(
        self, user_vector: np.ndarray, n: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``n`` items with the largest inner product with ``user_vector``, best first,
        never any id in ``exclude``. Fewer than ``n`` only when the catalog runs out."""
        if n < 1:
            raise ValueError("n must be at least 1")
        query = np.asarray(user_vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise ValueError(f"vector has {query.shape[1]} values, the index {self.dimension}")
        if not np.all(np.isfinite(query)):
            raise ValueError("vector has non-finite values")
        # Over-fetch by the excluded items actually in the index, then filter: exact for the
        # flat index, and unlike an IDSelector it does not starve the HNSW beam.
        excluded = {item for item in exclude if item in self._row}
        k = min(self.size, n + len(excluded))
        params = None
        if self.hnsw is not None:
            # The beam must be at least as wide as the result list or HNSW returns fewer
            # (and worse) neighbours than asked for.
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(self.hnsw.ef_search, k)
        scores, rows = self._index.search(np.ascontiguousarray(query), k, params=params)
        out: list[tuple[str, float]] = []
        for row, score in zip(rows[0], scores[0], strict=True):
            if row < 0:
                continue
            item = self.item_ids[row]
            if item in excluded:
                continue
            out.append((item, float(score)))
            if len(out) == n:
                break
        return out


def build_index(
    artefact: RetrievalArtefact,
    kind: str = "flat",
    hnsw: HnswParams | None = None,
    graph_dir: Path | None = None,
) -> CandidateIndex:
    """An index over every item vector of a trained artefact; ``graph_dir`` (normally the
    version folder) keeps the HNSW graph between starts."""
    return CandidateIndex(artefact.item_ids, artefact.item_vectors, kind, hnsw, graph_dir)


def build_cf_index(
    artefact: RetrievalArtefact,
    kind: str = "flat",
    hnsw: HnswParams | None = None,
    graph_dir: Path | None = None,
) -> CandidateIndex | None:
    """An inner-product index over the artefact's ALS item factors, None when it has none.
    The factors are not normalised: the ALS score is the raw inner product."""
    if artefact.cf is None:
        return None
    return CandidateIndex(
        artefact.item_ids, artefact.cf.item_factors, kind, hnsw, graph_dir, graph_prefix="als-index"
    )
