"""The versioned two-tower retrieval artefact: what offline training writes and the service loads.

A version folder ``<root>/<version>/`` holds the item vectors (row i = item_ids[i]), the user
tower and meta.json; ``<root>/LATEST`` names the version to serve. The user tower is a
function of item vectors only (recency-weighted mean pooling, then a linear layer), so a user
vector is computed from a list of recent items with numpy, no torch. Training lives in
``offline.retrieval.training``.

Since format 2 a version may also hold collaborative-filtering item factors (``als.npz``,
implicit-feedback ALS trained in ``offline.retrieval.cf``): the service folds a user's factor
in from the same history with one small least-squares solve, numpy only. A version without
that file (every format-1 version) loads with ``cf`` None and serves two-tower only.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LATEST = "LATEST"
ARTEFACT_FORMAT = 2
CF_FILE = "als.npz"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ColdStartError(ValueError):
    """The history holds no item the artefact knows, so no user vector can be computed."""


class ArtefactError(ValueError):
    """A version directory does not hold a valid retrieval artefact."""


class ArtefactNotFound(ArtefactError):
    """No such version (or no LATEST) under the artefact root."""


class InvalidVersionName(ArtefactError):
    """A version name that is not a plain directory name."""


def normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


@dataclass
class CollaborativeFactors:
    """Implicit-feedback ALS item factors (row i = the artefact's item_ids[i]) and the two
    hyper-parameters a user's factor is folded in with.

    Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets" (ICDM
    2008), eq. 4: with preference p_ui = 1 for the items the user interacted with and
    confidence c_ui = 1 + alpha * r_ui (r_ui = that user's interaction count with the item),
    the user factor minimising the ALS loss for fixed item factors Y is

        x_u = (YᵀY + Yᵀ(Cᵘ − I)Y + λI)⁻¹ Yᵀ Cᵘ p(u),

    and Cᵘ − I is non-zero only on the user's own items, so with YᵀY precomputed the solve
    costs O(h·f² + f³) for h history items and f factors, whatever the catalog size.
    ``offline.retrieval.cf`` trains implicit's ALS on exactly these confidences, so
    ``fold_in`` equals implicit's ``recalculate_user`` (tests/unit/test_retrieval_sources.py).
    """

    item_factors: np.ndarray
    regularization: float
    alpha: float
    max_history: int = 50

    def __post_init__(self) -> None:
        y = self.item_factors
        if y.ndim != 2 or y.shape[1] < 1 or not np.all(np.isfinite(y)):
            raise ArtefactError("ALS item factors must be a finite (n, f) matrix")
        if not (self.regularization > 0 and self.alpha >= 0 and self.max_history >= 1):
            raise ArtefactError("ALS needs regularization > 0, alpha >= 0 and max_history >= 1")
        self.item_factors = np.ascontiguousarray(y, dtype=np.float32)
        y64 = self.item_factors.astype(np.float64)
        self._gram = y64.T @ y64 + self.regularization * np.eye(y.shape[1])

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    def fold_in(self, rows: Sequence[int], counts: Sequence[float]) -> np.ndarray:
        """The user factor x_u for interaction counts ``counts[j]`` with item row ``rows[j]``
        (rows unique), by the closed-form solve above, float32."""
        if len(rows) == 0:
            raise ColdStartError("no item of the history has ALS factors")
        y = self.item_factors[np.asarray(rows, dtype=np.int64)].astype(np.float64)
        confidence = 1.0 + self.alpha * np.asarray(counts, dtype=np.float64)
        a = self._gram + (y.T * (confidence - 1.0)) @ y
        b = confidence @ y
        return np.linalg.solve(a, b).astype(np.float32)

    def history_factor(self, rows: Sequence[int]) -> np.ndarray:
        """``fold_in`` over the first ``max_history`` rows of a history (most recent first),
        each row counted as often as it occurs there."""
        counts: dict[int, int] = {}
        for r in rows[: self.max_history]:
            counts[r] = counts.get(r, 0) + 1
        return self.fold_in(list(counts), list(counts.values()))


@dataclass
class RetrievalArtefact:
    """A trained version: item vectors (row i = item_ids[i]) and the user tower."""

    item_ids: list[str]
    item_vectors: np.ndarray
    user_weight: np.ndarray
    user_bias: np.ndarray
    recency_decay: float
    max_history: int
    popularity: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    text_weight: np.ndarray | None = None
    text_bias: np.ndarray | None = None
    version: str = ""
    cf: CollaborativeFactors | None = None

    def __post_init__(self) -> None:
        n, d = self.item_vectors.shape
        if len(self.item_ids) != n or self.popularity.shape != (n,):
            raise ArtefactError("item ids, vectors and popularity disagree in length")
        if self.cf is not None and self.cf.item_factors.shape[0] != n:
            raise ArtefactError("ALS item factors and item ids disagree in length")
        if self.user_weight.shape != (d, d) or self.user_bias.shape != (d,):
            raise ArtefactError("user tower does not match the item vector dimension")
        self._row = {item: i for i, item in enumerate(self.item_ids)}
        if len(self._row) != n:
            raise ArtefactError("item ids are not unique")
        self._catalog_order = sorted(self.item_ids)
        order = np.lexsort((np.arange(n), -self.popularity))
        self._popular = [self.item_ids[i] for i in order]

    @property
    def dimension(self) -> int:
        return int(self.item_vectors.shape[1])

    def row(self, item_id: str) -> int | None:
        return self._row.get(item_id)

    def known(self, item_ids: Sequence[str]) -> list[str]:
        return [i for i in item_ids if i in self._row]

    def user_vector(
        self,
        history_item_ids: Sequence[str],
        extra: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Unit user vector from a history, most recent first; unknown items are skipped.

        ``extra``: vectors of items added after training (the retrieval service's live
        catalog), used for ids this artefact does not hold. Raises ColdStartError when no
        item of the history is known.
        """
        vectors: list[np.ndarray] = []
        last: str | None = None
        for item in history_item_ids:
            r = self._row.get(item)
            vec = self.item_vectors[r] if r is not None else (extra or {}).get(item)
            # Consecutive repeats (view, cart, purchase of one item) count once, as in training.
            if vec is not None and item != last:
                vectors.append(vec)
                last = item
            if len(vectors) == self.max_history:
                break
        if not vectors:
            raise ColdStartError("no item of the history is in the index")
        weights = self.recency_decay ** np.arange(len(vectors), dtype=np.float32)
        pooled = weights @ np.stack(vectors) / weights.sum()
        return normalise(self.user_weight @ pooled + self.user_bias)

    def cf_user_vector(self, history_item_ids: Sequence[str]) -> np.ndarray:
        """The ALS user factor folded in from a history (most recent first); unknown ids are
        skipped. Raises ColdStartError when the artefact has no ALS factors or no item is
        known."""
        if self.cf is None:
            raise ColdStartError("this version has no collaborative-filtering factors")
        return self.cf.history_factor(
            [r for i in history_item_ids if (r := self._row.get(i)) is not None]
        )

    def catalog_items(self, n: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """The first ``n`` items by item id, a public attribute of the catalog.

        ``popularity`` holds the raw training counts, which no differentially private
        mechanism has touched: they never order or score a served list (docs/privacy.md), so
        the cold-start answer is this catalog order, and a caller that wants popularity asks
        the feature store for the gateway's DP release.
        """
        out: list[str] = []
        for item in self._catalog_order:
            if item not in exclude:
                out.append(item)
                if len(out) == n:
                    break
        return out

    def popular_items(self, n: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """The ``n`` most interacted items of the training data, ties by catalog order.

        Raw counts: for offline evaluation baselines only, over data the evaluator already
        holds. No serving path calls this (tests/unit/test_retrieval_model.py checks).
        """
        out: list[str] = []
        for item in self._popular:
            if item not in exclude:
                out.append(item)
                if len(out) == n:
                    break
        return out


def validate_version_name(version: str) -> str:
    """A version must be a plain directory name: no separators, no "..", no hidden files."""
    if not _VERSION_RE.match(version) or ".." in version:
        raise InvalidVersionName(
            f"invalid version name {version!r}: use letters, digits, '.', '_' and '-'"
        )
    return version


def default_version(artefact: RetrievalArtefact) -> str:
    created = datetime.fromisoformat(artefact.meta["created_at"])
    return f"{created:%Y%m%dT%H%M%S}-{artefact.meta['dataset']}-s{artefact.meta['seed']}"


def save_artefact(
    artefact: RetrievalArtefact,
    root: Path | str,
    version: str | None = None,
    *,
    set_latest: bool = True,
) -> Path:
    """Write ``artefact`` to ``root/<version>/`` and, by default, point ``root/LATEST`` at it.

    The directory appears complete or not at all (written aside, then renamed), so a service
    never loads a half-written version.
    """
    root = Path(root)
    base = validate_version_name(version or default_version(artefact))
    name, n = base, 1
    while (root / name).exists():
        n += 1
        name = f"{base}-{n}"
    tmp = root / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / "item_ids.json").write_text(json.dumps(artefact.item_ids))
    np.save(tmp / "item_vectors.npy", artefact.item_vectors.astype(np.float32))
    np.save(tmp / "popularity.npy", artefact.popularity.astype(np.int64))
    np.savez(
        tmp / "user_tower.npz",
        weight=artefact.user_weight.astype(np.float32),
        bias=artefact.user_bias.astype(np.float32),
        recency_decay=np.float32(artefact.recency_decay),
        max_history=np.int64(artefact.max_history),
    )
    if artefact.text_weight is not None and artefact.text_bias is not None:
        np.savez(
            tmp / "item_tower.npz", text_weight=artefact.text_weight, text_bias=artefact.text_bias
        )
    if artefact.cf is not None:
        np.savez(
            tmp / CF_FILE,
            item_factors=artefact.cf.item_factors,
            regularization=np.float64(artefact.cf.regularization),
            alpha=np.float64(artefact.cf.alpha),
            max_history=np.int64(artefact.cf.max_history),
        )
    meta = {**artefact.meta, "version": name}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    tmp.rename(root / name)
    artefact.version = name
    artefact.meta = meta
    if set_latest:
        set_latest_version(root, name)
    log.info("artefact saved", extra={"version": name, "items": len(artefact.item_ids)})
    return root / name


def set_latest_version(root: Path | str, version: str) -> None:
    """Atomically point ``root/LATEST`` at an existing version."""
    root = Path(root)
    validate_version_name(version)
    if not (root / version / "meta.json").exists():
        raise ArtefactNotFound(f"version {version!r} does not exist")
    tmp = root / f".{LATEST}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / LATEST)


def resolve_version(root: Path | str, version: str = "") -> Path:
    """The directory of ``version`` under ``root``; "" means the one named in ``LATEST``."""
    root = Path(root)
    if not version:
        latest = root / LATEST
        if not latest.exists():
            raise ArtefactNotFound(f"no {LATEST} version is published; train one first")
        version = latest.read_text().strip()
    path = root / validate_version_name(version)
    if not (path / "meta.json").is_file():
        raise ArtefactNotFound(f"version {version!r} not found")
    return path


def artefact_dir(path: Path | str) -> Path:
    """A version folder as given, or the ``LATEST`` version under a root folder."""
    path = Path(path)
    return path if (path / "meta.json").is_file() else resolve_version(path)


def load_artefact(path: Path | str) -> RetrievalArtefact:
    """Read a version directory written by ``save_artefact``; checks shapes and finiteness."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        item_ids = json.loads((path / "item_ids.json").read_text())
        vectors = np.load(path / "item_vectors.npy")
        popularity = np.load(path / "popularity.npy")
        with np.load(path / "user_tower.npz") as tower:
            weight, bias = tower["weight"], tower["bias"]
            decay, max_history = float(tower["recency_decay"]), int(tower["max_history"])
        text_weight = text_bias = None
        if (path / "item_tower.npz").exists():
            with np.load(path / "item_tower.npz") as item_tower:
                text_weight, text_bias = item_tower["text_weight"], item_tower["text_bias"]
        cf = None
        if (path / CF_FILE).exists():  # absent in format 1: two-tower only
            with np.load(path / CF_FILE) as als:
                cf = CollaborativeFactors(
                    item_factors=als["item_factors"],
                    regularization=float(als["regularization"]),
                    alpha=float(als["alpha"]),
                    max_history=int(als["max_history"]),
                )
    except (OSError, ValueError, KeyError) as exc:
        raise ArtefactError(f"{path.name} is not a readable retrieval artefact: {exc}") from exc
    if vectors.ndim != 2 or vectors.dtype != np.float32 or not np.all(np.isfinite(vectors)):
        raise ArtefactError(f"{path.name}: item_vectors.npy must be finite float32 (n, d)")
    if not isinstance(item_ids, list) or not all(isinstance(i, str) for i in item_ids):
        raise ArtefactError(f"{path.name}: item_ids.json must be a list of strings")
    artefact = RetrievalArtefact(
        item_ids=item_ids,
        item_vectors=vectors,
        user_weight=weight,
        user_bias=bias,
        recency_decay=decay,
        max_history=max_history,
        popularity=popularity,
        meta=meta,
        text_weight=text_weight,
        text_bias=text_bias,
        version=str(meta.get("version", path.name)),
        cf=cf,
    )
    return artefact
