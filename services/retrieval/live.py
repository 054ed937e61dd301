"""The live catalog over a served version: items added since training, items withdrawn since.

A trained version is immutable, but a shop's catalog is not. ``LiveCatalog`` keeps what
changed since the artefact was trained:

- added items, as the frozen all-MiniLM-L6-v2 embedding of their title (384 values). The
  encoder is frozen and checksum-pinned (``shared.minilm``), so that embedding does not
  depend on the version served; the item vector is the served version's own title tower
  applied to it, ``normalise(W_text · t + b_text)``, which is exactly what training gives an
  item without interactions (its ID embedding is zero, docs/retrieval.md). After a hot swap
  the same embeddings are projected with the new version's tower, and items the new version
  was trained on keep their trained vectors.
- withdrawn items (retired, out of stock): no search, cold-start list or embedding lookup
  returns them, whether they were trained or added.

``LiveLayer`` is the immutable snapshot of that state for one version: a small exact
(``IndexFlatIP``) index over the added items, searched beside the version's own index and
merged by score. A change builds a new layer and the retriever swaps one reference, as a
version swap does, so requests in flight finish on the snapshot they started with. No grpc.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from services.retrieval.index import CandidateIndex
from shared.artefacts.retrieval import RetrievalArtefact, normalise
from shared.minilm import HIDDEN_SIZE


class LiveCatalogError(ValueError):
    """A change the live catalog refuses; the message names the offending item."""


@dataclass(frozen=True)
class LiveLayer:
    """Added items (vectors in the served version's space) and withdrawn ids, immutable."""

    item_ids: tuple[str, ...] = ()
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    index: CandidateIndex | None = None
    removed: frozenset[str] = frozenset()
    # The title embeddings the vectors were projected from, to reuse them in the next layer.
    sources: Mapping[str, np.ndarray] = field(default_factory=dict)

    def search(
        self, vector: np.ndarray, n: int, exclude: Collection[str]
    ) -> list[tuple[str, float]]:
        if self.index is None:
            return []
        return self.index.search(vector, min(n, self.index.size), exclude)


EMPTY_LAYER = LiveLayer()


def project_titles(artefact: RetrievalArtefact, titles: np.ndarray) -> np.ndarray:
    """Item vectors of title embeddings (m, 384) under ``artefact``'s title tower."""
    if artefact.text_weight is None or artefact.text_bias is None:
        raise LiveCatalogError(
            f"index version {artefact.version!r} has no title tower (item_tower.npz); "
            "retrain it to add items without retraining"
        )
    return normalise(titles @ artefact.text_weight.T + artefact.text_bias)


@dataclass
class LiveCatalog:
    """What changed since training; mutated only under the servicer's load lock."""

    titles: dict[str, np.ndarray] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)

    def upsert(
        self, artefact: RetrievalArtefact, items: Sequence[tuple[str, Sequence[float]]]
    ) -> tuple[int, int, int]:
        """Apply ``(item id, title embedding or empty)``; returns (added, updated, restored).

        Checked completely before anything changes, so a refused batch changes nothing. An
        item the version was trained on keeps its trained vector (its ID embedding knows its
        interactions); its embedding is kept only for a later version that lacks it.
        """
        parsed = [self._parse(artefact, i, *item) for i, item in enumerate(items)]
        seen: dict[str, int] = {}
        for i, (item_id, _) in enumerate(parsed):
            if item_id in seen:
                raise LiveCatalogError(f"items[{i}].item_id repeats items[{seen[item_id]}]")
            seen[item_id] = i
        if any(vec is not None for _, vec in parsed):
            project_titles(artefact, np.zeros((1, HIDDEN_SIZE), dtype=np.float32))
        added = updated = restored = 0
        for item_id, vec in parsed:
            known = artefact.row(item_id) is not None or item_id in self.titles
            if item_id in self.removed:
                self.removed.discard(item_id)
                restored += 1
            elif vec is not None and not known:
                added += 1
            elif vec is not None and artefact.row(item_id) is None:
                updated += 1
            if vec is not None:
                self.titles[item_id] = vec
        return added, updated, restored

    def _parse(
        self, artefact: RetrievalArtefact, i: int, item_id: str, values: Sequence[float]
    ) -> tuple[str, np.ndarray | None]:
        if not item_id:
            raise LiveCatalogError(f"items[{i}].item_id is empty")
        if not len(values):
            if artefact.row(item_id) is None and item_id not in self.titles:
                raise LiveCatalogError(
                    f"items[{i}].title_embedding is required: the index does not hold this item yet"
                )
            return item_id, None
        vec = np.asarray(values, dtype=np.float32)
        if vec.shape != (HIDDEN_SIZE,):
            raise LiveCatalogError(
                f"items[{i}].title_embedding has {vec.size} values; expected {HIDDEN_SIZE}"
            )
        if not np.all(np.isfinite(vec)) or not np.any(vec):
            raise LiveCatalogError(f"items[{i}].title_embedding is zero or not finite")
        return item_id, vec

    def remove(self, artefact: RetrievalArtefact, item_ids: Sequence[str]) -> int:
        """Withdraw ``item_ids``; returns how many were served until now. Unknown ids are
        withdrawn too, so an item retired before its upsert arrived stays out."""
        served = 0
        for i, item_id in enumerate(item_ids):
            if not item_id:
                raise LiveCatalogError(f"item_ids[{i}] is empty")
        for item_id in dict.fromkeys(item_ids):
            known = artefact.row(item_id) is not None or item_id in self.titles
            if known and item_id not in self.removed:
                served += 1
            self.removed.add(item_id)
        return served

    def layer_for(
        self, artefact: RetrievalArtefact, previous: LiveLayer | None = None
    ) -> LiveLayer:
        """The snapshot of this catalog over ``artefact``: its tower projects the added items
        it was not trained on. ``previous``, a layer over the same artefact, lends the
        vectors of items whose title embedding did not change (the same array object), so a
        change of one item projects one title."""
        new = sorted(i for i in self.titles if artefact.row(i) is None)
        removed = frozenset(self.removed)
        if not new:
            return LiveLayer(removed=removed)
        reuse = previous.sources if previous is not None else {}
        todo = [i for i in new if reuse.get(i) is not self.titles[i]]
        vectors = {i: previous.vectors[i] for i in new if i not in todo} if previous else {}
        if todo:
            projected = project_titles(artefact, np.stack([self.titles[i] for i in todo]))
            vectors.update(zip(todo, projected, strict=True))
        matrix = np.stack([vectors[i] for i in new])
        return LiveLayer(
            item_ids=tuple(new),
            vectors=vectors,
            index=CandidateIndex(new, matrix, "flat"),
            removed=removed,
            sources={i: self.titles[i] for i in new},
        )
