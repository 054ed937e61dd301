"""The retrieval artefact: user tower, cold start, persistence and version resolution."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from offline.retrieval.training import (
    TrainConfig,
    recent_histories,
    training_examples,
    user_sequences,
)
from shared.artefacts.retrieval import (
    LATEST,
    ArtefactError,
    ArtefactNotFound,
    ColdStartError,
    InvalidVersionName,
    RetrievalArtefact,
    load_artefact,
    resolve_version,
    save_artefact,
    set_latest_version,
)
from shared.data.types import Interaction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_artefact(n: int = 6, dim: int = 4, seed: int = 0) -> RetrievalArtefact:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return RetrievalArtefact(
        item_ids=[f"i{k}" for k in range(n)],
        item_vectors=vectors,
        user_weight=np.eye(dim, dtype=np.float32),
        user_bias=np.zeros(dim, dtype=np.float32),
        recency_decay=0.5,
        max_history=3,
        popularity=np.array([5, 9, 0, 9, 1, 2][:n], dtype=np.int64),
        meta={"dataset": "unit", "seed": seed, "created_at": T0.isoformat()},
    )


def test_user_vector_is_the_recency_weighted_mean_of_known_items() -> None:
    a = make_artefact()
    got = a.user_vector(["unknown", "i0", "i0", "i1", "i2", "i3"])
    # Repeats collapse, unknown ids are skipped, and only max_history=3 items count.
    pooled = (1.0 * a.item_vectors[0] + 0.5 * a.item_vectors[1] + 0.25 * a.item_vectors[2]) / 1.75
    np.testing.assert_allclose(got, pooled / np.linalg.norm(pooled), rtol=1e-5)
    assert got.dtype == np.float32


def test_user_vector_without_known_items_is_a_cold_start() -> None:
    a = make_artefact()
    with pytest.raises(ColdStartError):
        a.user_vector(["x", "y"])
    with pytest.raises(ColdStartError):
        a.user_vector([])


def test_catalog_items_follow_item_ids_never_the_raw_counts() -> None:
    a = make_artefact()
    # The counts would order i1, i3, i0, i5: the list ignores them.
    assert a.catalog_items(4) == ["i0", "i1", "i2", "i3"]
    assert a.catalog_items(2, {"i0"}) == ["i1", "i2"]
    assert not hasattr(a, "popularity_share")


def test_popular_items_order_ties_and_exclusions() -> None:
    a = make_artefact()
    assert a.popular_items(4) == ["i1", "i3", "i0", "i5"]
    assert a.popular_items(2, {"i0", "i1"}) == ["i3", "i5"]


def test_no_serving_code_reads_the_artefacts_raw_counts() -> None:
    """The raw training counts are for offline baselines; a served list never uses them."""
    # Retrieval is the only service that loads an artefact.
    root = Path(__file__).resolve().parents[2] / "services" / "retrieval"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"\.popular_items\(|\.popularity\b|popularity_share", path.read_text())
    ]
    assert offenders == []


def test_artefact_rejects_inconsistent_parts() -> None:
    a = make_artefact()
    with pytest.raises(ArtefactError, match="disagree"):
        RetrievalArtefact(
            a.item_ids[:-1], a.item_vectors, a.user_weight, a.user_bias, 0.5, 3, a.popularity
        )
    with pytest.raises(ArtefactError, match="user tower"):
        RetrievalArtefact(a.item_ids, a.item_vectors, np.eye(3), a.user_bias, 0.5, 3, a.popularity)
    with pytest.raises(ArtefactError, match="unique"):
        RetrievalArtefact(
            ["a"] * 6, a.item_vectors, a.user_weight, a.user_bias, 0.5, 3, a.popularity
        )


def test_save_load_round_trip_and_latest(tmp_path: Path) -> None:
    a = make_artefact()
    first = save_artefact(a, tmp_path)
    assert first.name == "20260101T000000-unit-s0"
    assert (tmp_path / LATEST).read_text().strip() == first.name
    # The same name again gets a suffix instead of overwriting a published version.
    second = save_artefact(make_artefact(seed=0), tmp_path, set_latest=False)
    assert second.name == "20260101T000000-unit-s0-2"
    assert resolve_version(tmp_path) == first
    b = load_artefact(resolve_version(tmp_path, second.name))
    assert b.version == second.name
    assert b.item_ids == a.item_ids
    np.testing.assert_array_equal(b.item_vectors, a.item_vectors)
    np.testing.assert_array_equal(b.popularity, a.popularity)
    np.testing.assert_allclose(b.user_vector(["i2", "i4"]), a.user_vector(["i2", "i4"]))
    meta = json.loads((second / "meta.json").read_text())
    assert meta["version"] == second.name
    assert not list(tmp_path.glob(".*tmp"))
    set_latest_version(tmp_path, second.name)
    assert resolve_version(tmp_path) == second


def test_resolve_version_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtefactNotFound, match="LATEST"):
        resolve_version(tmp_path)
    with pytest.raises(ArtefactNotFound, match="not found"):
        resolve_version(tmp_path, "v-missing")
    for bad in ["../etc", "a/b", ".hidden", "x" * 200]:
        with pytest.raises(InvalidVersionName):
            resolve_version(tmp_path, bad)
    with pytest.raises(ArtefactNotFound):
        set_latest_version(tmp_path, "v-missing")


def test_load_rejects_damaged_artefacts(tmp_path: Path) -> None:
    path = save_artefact(make_artefact(), tmp_path, "v1")
    (path / "item_vectors.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ArtefactError, match="not a readable"):
        load_artefact(path)
    path = save_artefact(make_artefact(), tmp_path, "v2")
    np.save(path / "item_vectors.npy", np.full((6, 4), np.nan, dtype=np.float32))
    with pytest.raises(ArtefactError, match="finite"):
        load_artefact(path)
    path = save_artefact(make_artefact(), tmp_path, "v3")
    (path / "item_ids.json").write_text(json.dumps([1, 2, 3, 4, 5, 6]))
    with pytest.raises(ArtefactError, match="list of strings"):
        load_artefact(path)


def test_sequences_and_examples_use_time_order_and_collapse_repeats() -> None:
    xs = [
        Interaction("u1", "b", T0 + timedelta(minutes=2)),
        Interaction("u1", "a", T0),
        Interaction("u1", "a", T0 + timedelta(minutes=1)),
        Interaction("u1", "c", T0 + timedelta(minutes=3)),
        Interaction("u2", "a", T0),
    ]
    assert user_sequences(xs) == {"u1": ["a", "b", "c"], "u2": ["a"]}
    assert recent_histories(xs)["u1"] == ["c", "b", "a"]
    hists, targets = training_examples(user_sequences(xs), {"a": 0, "b": 1, "c": 2}, 2)
    assert targets.tolist() == [1, 2]
    assert hists.tolist() == [[0, -1], [1, 0]]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 1},
        {"epochs": 0},
        {"recency_decay": 0.0},
        {"id_dropout": 1.0},
        {"temperature": 0.0},
        {"logq_weight": -1.0},
    ],
)
def test_train_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        TrainConfig(**kwargs)  # type: ignore[arg-type]
