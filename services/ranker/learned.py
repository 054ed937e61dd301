"""The learned ranking model: LightGBM lambdarank over the features of shared.ranking_features.

An artefact is a folder ``var/models/ltr/<version>/`` with ``model.txt`` (the booster, LightGBM's
text format) and ``meta.json`` (version, feature set version, the feature list the model was
fitted on, the training data and its validation metric); ``var/models/ltr/LATEST`` names the
newest one, as for the cross-encoder. offline/ranker/ltr.py writes it with ``save_ranking_model``.

The relevance is the booster's raw score; the per-feature contributions are its SHAP values
(LightGBM ``pred_contrib``; Lundberg et al., "Consistent individualized feature attribution for
tree ensembles", 2018): each row's contributions plus the expected value sum to the relevance,
so they explain exactly the number the orchestrator orders by.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.ranker.versions import VERSION_NAME, set_latest
from shared.errors import FailedPrecondition, InvalidArgument
from shared.ranking_features import FEATURE_SET_VERSION, FEATURES, check_feature_list

MODEL_FILE = "model.txt"
META_FILE = "meta.json"
DEFAULT_ROOT = Path("var/models/ltr")


@dataclass(frozen=True)
class Contribution:
    """One feature's share of a relevance."""

    feature: str
    value: float


@dataclass(frozen=True)
class LearnedScore:
    """The learned relevance of one candidate and its contributions, largest magnitude first."""

    relevance: float
    contributions: tuple[Contribution, ...]


def resolve_ranking_model_dir(path: Path | str) -> Path | None:
    """A version folder as given, the one ``LATEST`` names under a root, or None when ``path``
    holds no ranking model at all (the ranker then serves without one)."""
    path = Path(path)
    if (path / META_FILE).exists():
        return path
    latest = path / "LATEST"
    if latest.exists():
        folder = path / latest.read_text().strip()
        if (folder / META_FILE).exists():
            return folder
        raise FileNotFoundError(f"{latest} names {folder.name!r}, which holds no {META_FILE}")
    return None


class RankingModel:
    """A loaded booster and the columns of the full feature matrix it reads."""

    def __init__(self, booster: Any, meta: dict[str, Any], folder: Path | None = None) -> None:
        self.features: tuple[str, ...] = tuple(meta["features"])
        self.columns = check_feature_list(self.features, str(meta.get("feature_set_version")))
        if booster.num_feature() != len(self.features):
            raise ValueError(
                f"the booster reads {booster.num_feature()} features, its metadata lists "
                f"{len(self.features)}"
            )
        self.booster = booster
        self.meta = meta
        self.folder = folder

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def needs_bert(self) -> bool:
        return "bert_score_z" in self.features

    def predict(self, matrix: np.ndarray) -> list[LearnedScore]:
        """Relevance and contributions per row of a full ``FEATURES`` matrix."""
        if matrix.ndim != 2 or matrix.shape[1] != len(FEATURES):
            raise ValueError(f"expected a (n, {len(FEATURES)}) feature matrix")
        if matrix.shape[0] == 0:
            return []
        x = matrix[:, self.columns]
        contrib = np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)
        out = []
        for row in contrib:
            # The last column is the expected value (the bias), not a feature.
            order = np.argsort(-np.abs(row[:-1]), kind="stable")
            out.append(
                LearnedScore(
                    relevance=float(row.sum()),
                    contributions=tuple(
                        Contribution(self.features[i], float(row[i])) for i in order
                    ),
                )
            )
        return out


def load_ranking_model(path: Path | str) -> RankingModel | None:
    """The model under ``path`` (a version folder or a root with LATEST), None when there is
    none; a model that is there but unreadable or built on another feature set raises."""
    folder = resolve_ranking_model_dir(path)
    if folder is None:
        return None
    import lightgbm

    meta = json.loads((folder / META_FILE).read_text())
    booster = lightgbm.Booster(model_file=str(folder / MODEL_FILE))
    return RankingModel(booster, meta, folder)


def save_ranking_model(
    booster: Any, root: Path, version: str, meta: dict[str, Any], *, set_latest: bool = True
) -> Path:
    """Write ``root/<version>/`` and, unless told otherwise, point ``root/LATEST`` at it."""
    folder = root / version
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / MODEL_FILE))
    full_meta = {"version": version, "feature_set_version": FEATURE_SET_VERSION, **meta}
    check_feature_list(full_meta["features"], full_meta["feature_set_version"])
    (folder / META_FILE).write_text(json.dumps(full_meta, indent=2, sort_keys=True) + "\n")
    if set_latest:
        set_latest_ranking_model(root, version)
    return folder


def set_latest_ranking_model(root: Path | str, version: str) -> None:
    """Point ``root/LATEST`` at an existing version (services.ranker.versions.set_latest)."""
    set_latest(root, version, "ranking model")


NO_MODEL = "none"
"""``ScoreCandidatesRequest.ranking_model`` asking for no learned model."""


class RankingModels:
    """The default learned model and, when a request names one (an experiment variant),
    another version under the same root, loaded on first use and kept (at most
    ``max_loaded`` besides the default, least recently used dropped)."""

    def __init__(
        self, root: Path | str | None, default: RankingModel | None, *, max_loaded: int = 4
    ) -> None:
        path = Path(root) if root is not None else None
        # A version folder given as the root: its siblings are the other versions.
        self._root = path.parent if path is not None and (path / META_FILE).exists() else path
        self.default = default
        self._max_loaded = max_loaded
        self._loaded: OrderedDict[str, RankingModel] = OrderedDict()

    def get(self, name: str) -> RankingModel | None:
        """The model ``name`` asks for: "" the default, ``NO_MODEL`` none, else that version;
        InvalidArgument for a malformed name, FailedPrecondition for a missing version."""
        if not name:
            return self.default
        if name == NO_MODEL:
            return None
        if self.default is not None and name == self.default.version:
            return self.default
        if not VERSION_NAME.match(name):
            raise InvalidArgument("ranking_model must be a version name ([A-Za-z0-9._-])")
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        folder = self._root / name if self._root is not None else None
        if folder is None or not (folder / META_FILE).exists():
            raise FailedPrecondition(f"no ranking model version {name!r} on this ranker")
        model = load_ranking_model(folder)
        assert model is not None
        self._loaded[name] = model
        while len(self._loaded) > self._max_loaded:
            self._loaded.popitem(last=False)
        return model
