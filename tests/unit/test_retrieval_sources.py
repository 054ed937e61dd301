"""Candidate sources of the retrieval service: the ALS fold-in against implicit's own solver,
the history source, the reciprocal-rank-fusion merge, and artefacts with and without factors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from offline.retrieval.cf import CfConfig, confidence_matrix, train_cf
from services.retrieval.index import build_cf_index, build_index
from services.retrieval.retriever import ServedIndex, retrieve_for_history
from services.retrieval.sources import Source, SourceWeights, history_candidates, merge
from shared.artefacts.retrieval import (
    CF_FILE,
    ArtefactError,
    CollaborativeFactors,
    RetrievalArtefact,
    load_artefact,
    save_artefact,
)
from shared.data.types import Interaction, split_log

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _interactions(users: int, items: int, seed: int) -> list[Interaction]:
    """Users with two tastes (even or odd items), some pairs repeated, over 100 days."""
    rng = np.random.default_rng(seed)
    out: list[Interaction] = []
    for u in range(users):
        pool = np.arange(u % 2, items, 2)
        for i, day in zip(rng.choice(pool, size=6), rng.uniform(0, 100, size=6), strict=True):
            out.append(Interaction(f"u{u:03d}", f"i{i:03d}", T0 + timedelta(days=float(day))))
    return sorted(out, key=lambda x: x.timestamp)


def _fitted(alpha: float, reg: float) -> tuple[AlternatingLeastSquares, Any, list[str]]:
    data = _interactions(60, 40, 0)
    item_ids = sorted({x.item_id for x in data})
    matrix = confidence_matrix(data, {item: k for k, item in enumerate(item_ids)}, alpha)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=8, regularization=reg, alpha=1.0, iterations=5, random_state=0, num_threads=1
        )
        model.fit(matrix, show_progress=False)
    return model, matrix, item_ids


@pytest.mark.parametrize(("alpha", "reg"), [(1.0, 0.1), (20.0, 2.0)])
def test_fold_in_equals_implicits_recalculate_user_and_recommend(alpha: float, reg: float) -> None:
    model, matrix, _ = _fitted(alpha, reg)
    cf = CollaborativeFactors(np.asarray(model.item_factors), reg, alpha)
    for user in (0, 7, 31):
        row = matrix[user]
        # implicit's Cholesky solve on c = 1 + alpha * r (the matrix values) ...
        expected = model.recalculate_user(user, row)
        counts = (row.data - 1.0) / alpha
        assert np.allclose(counts, np.round(counts))
        # ... equals the numpy solve from the item rows and the raw counts.
        mine = cf.fold_in(row.indices.tolist(), np.round(counts).tolist())
        np.testing.assert_allclose(mine, expected, rtol=2e-4, atol=2e-5)
        ids, _ = model.recommend(
            user, row, N=10, recalculate_user=True, filter_already_liked_items=False
        )
        top = np.argsort(-(cf.item_factors @ mine), kind="stable")[:10]
        assert list(top) == list(ids)


def _artefact(
    n: int = 40, dim: int = 4, cf: CollaborativeFactors | None = None
) -> RetrievalArtefact:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return RetrievalArtefact(
        item_ids=[f"i{k:03d}" for k in range(n)],
        item_vectors=vectors,
        user_weight=np.eye(dim, dtype=np.float32),
        user_bias=np.zeros(dim, dtype=np.float32),
        recency_decay=0.8,
        max_history=10,
        popularity=np.zeros(n, dtype=np.int64),
        meta={"dataset": "unit", "seed": 0, "created_at": "2026-01-01T00:00:00+00:00"},
        cf=cf,
    )


def test_artefact_history_factor_counts_repeats_and_skips_unknown_ids() -> None:
    model, _, item_ids = _fitted(5.0, 0.5)
    cf = CollaborativeFactors(np.asarray(model.item_factors), 0.5, 5.0, max_history=4)
    art = _artefact(len(item_ids), cf=cf)
    history = ["i003", "zzz", "i010", "i003", "i021", "i030"]  # i030 is past max_history
    np.testing.assert_allclose(
        art.cf_user_vector(history), cf.fold_in([3, 10, 21], [2, 1, 1]), rtol=1e-6
    )
    with pytest.raises(ValueError, match="no item"):
        art.cf_user_vector(["zzz"])
    with pytest.raises(ValueError, match="no collaborative"):
        _artefact(len(item_ids)).cf_user_vector(history)


def test_history_source_scores_recency_weighted_occurrences() -> None:
    history = ["a", "b", "a", "c", "x"]
    got = history_candidates(history, 10, exclude={"x"}, decay=0.5)
    assert got == [("a", 1.0 + 0.25), ("b", 0.5), ("c", 0.125)]
    assert history_candidates(history, 2, decay=0.5) == got[:2]
    # Equal scores: the more recent item first.
    assert [i for i, _ in history_candidates(["p", "q"], 2, decay=1.0)] == ["p", "q"]


def test_merge_single_source_keeps_its_list_and_scores() -> None:
    tt = [("a", 0.9), ("b", 0.7), ("c", 0.1)]
    merged = merge({Source.TWO_TOWER: tt, Source.HISTORY: [("z", 5.0)]}, SourceWeights(1, 1, 0), 2)
    assert [(m.item_id, m.score) for m in merged] == tt[:2]
    assert all(m.sources == (Source.TWO_TOWER,) for m in merged)


def test_merge_fuses_ranks_dedupes_and_tags_every_source() -> None:
    weights = SourceWeights(1.0, 2.0, 0.5, rrf_k=10.0)
    lists = {
        Source.TWO_TOWER: [("a", 0.9), ("b", 0.8), ("c", 0.7)],
        Source.COLLABORATIVE: [("c", 3.0), ("d", 2.0)],
        Source.HISTORY: [("b", 1.0)],
    }
    merged = merge(lists, weights, 10)
    ids = [m.item_id for m in merged]
    assert sorted(ids) == ["a", "b", "c", "d"]  # one entry per item
    by_id = {m.item_id: m for m in merged}
    # fused = sum of w / (k + rank) over the sources that returned the item
    assert by_id["c"].score == pytest.approx(1.0 / 13 + 2.0 / 11)
    assert by_id["b"].score == pytest.approx(1.0 / 12 + 0.5 / 11)
    assert [m.score for m in merged] == sorted((m.score for m in merged), reverse=True)
    # strongest contribution first, each with the source's own score and rank
    assert [(h.source, h.score, h.rank) for h in by_id["c"].hits] == [
        (Source.COLLABORATIVE, 3.0, 1),
        (Source.TWO_TOWER, 0.7, 3),
    ]
    assert by_id["b"].sources == (Source.TWO_TOWER, Source.HISTORY)
    assert ids[0] == "c"
    assert len(merge(lists, weights, 2)) == 2


def test_source_weights_reject_nonsense() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        SourceWeights(-1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="positive weight"):
        SourceWeights(0.0, 0.0, 0.0)


def test_artefact_round_trip_with_factors_and_old_artefacts_still_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cf = CollaborativeFactors(rng.standard_normal((40, 6)).astype(np.float32), 0.3, 4.0, 7)
    path = save_artefact(_artefact(cf=cf), tmp_path, "with-cf", set_latest=False)
    loaded = load_artefact(path)
    assert loaded.cf is not None
    np.testing.assert_array_equal(loaded.cf.item_factors, cf.item_factors)
    assert (loaded.cf.regularization, loaded.cf.alpha, loaded.cf.max_history) == (0.3, 4.0, 7)

    # A format-1 version: no als.npz, format 1 in meta.json. It loads and serves two-tower
    # (and the shopper's own history), no collaborative source.
    old = save_artefact(_artefact(), tmp_path, "format-1", set_latest=False)
    meta = json.loads((old / "meta.json").read_text())
    (old / "meta.json").write_text(json.dumps({**meta, "format": 1}))
    assert not (old / CF_FILE).exists()
    art = load_artefact(old)
    assert art.cf is None
    served = ServedIndex("format-1", art, build_index(art), build_cf_index(art))
    assert served.cf_index is None
    assert served.sources(SourceWeights()) == (Source.TWO_TOWER, Source.HISTORY)
    found = retrieve_for_history(served, ["i001", "i002"], 10)
    assert len(found.items) == 10
    assert {h.source for hits in found.hits for h in hits} == {Source.TWO_TOWER, Source.HISTORY}

    # Factors that do not match the item ids are a damaged version.
    np.savez(
        path / CF_FILE,
        item_factors=cf.item_factors[:5],
        regularization=0.3,
        alpha=4.0,
        max_history=7,
    )
    with pytest.raises(ArtefactError):
        load_artefact(path)


def test_train_cf_chooses_the_best_validation_cell_and_refits() -> None:
    data = _interactions(80, 30, 1)
    item_ids = sorted({x.item_id for x in data})
    config = CfConfig(
        factors=4, iterations=3, regularization_grid=(0.1, 5.0), alpha_grid=(1.0, 10.0), k=5
    )
    cf, record = train_cf(data, item_ids, config, seed=0)
    grid = record["validation"]["grid"]
    assert len(grid) == 4
    top = max(grid, key=lambda g: g["recall@5"])
    assert record["chosen"] == {"regularization": top["regularization"], "alpha": top["alpha"]}
    assert (cf.regularization, cf.alpha) == (top["regularization"], top["alpha"])
    assert cf.item_factors.shape == (len(item_ids), 4)
    before, after = split_log(data, 0.8)
    assert max(x.timestamp for x in before) < min(x.timestamp for x in after)
    assert record["validation"]["users"] > 0


def test_hnsw_graphs_of_both_indexes_are_kept_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    cf = CollaborativeFactors(rng.standard_normal((40, 6)).astype(np.float32), 0.3, 4.0)
    art = _artefact(cf=cf)
    tt = build_index(art, "hnsw", graph_dir=tmp_path)
    als = build_cf_index(art, "hnsw", graph_dir=tmp_path)
    assert als is not None
    assert sorted(p.name.split("-hnsw")[0] for p in tmp_path.glob("*.faiss")) == [
        "als-index",
        "index",
    ]
    assert (tt.dimension, als.dimension) == (4, 6)
    # A reload reads each graph back, and the ALS one still ranks by the factors.
    again = build_cf_index(art, "hnsw", graph_dir=tmp_path)
    assert again is not None
    user = art.cf_user_vector(["i001", "i002"])
    best = int(np.argmax(cf.item_factors @ user))
    assert again.search(user, 1)[0][0] == art.item_ids[best]
