"""FAISS candidate indexes: exactness of flat, agreement of HNSW, exclusions, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.retrieval.index import CandidateIndex, HnswParams, hnsw_file_name, make_faiss_index


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def catalog() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    return [f"item-{i}" for i in range(2000)], _unit(rng, 2000, 32)


def test_flat_returns_the_exact_top_n_without_excluded_items(
    catalog: tuple[list[str], np.ndarray],
) -> None:
    ids, vectors = catalog
    index = CandidateIndex(ids, vectors, "flat")
    rng = np.random.default_rng(1)
    for query in _unit(rng, 5, 32):
        scores = vectors @ query
        order = np.argsort(-scores)
        excluded = [ids[i] for i in order[:7:2]] + ["not-in-catalog"]
        expected = [ids[i] for i in order if ids[i] not in excluded][:50]
        got = index.search(query, 50, exclude=excluded)
        assert [item for item, _ in got] == expected
        np.testing.assert_allclose(
            [s for _, s in got], [scores[ids.index(i)] for i in expected], rtol=1e-5
        )


def test_hnsw_agrees_with_flat_on_almost_every_neighbour(
    catalog: tuple[list[str], np.ndarray],
) -> None:
    ids, vectors = catalog
    flat = CandidateIndex(ids, vectors, "flat")
    hnsw = CandidateIndex(ids, vectors, "hnsw", HnswParams(m=16, ef_construction=100, ef_search=64))
    rng = np.random.default_rng(2)
    overlaps = []
    for query in _unit(rng, 20, 32):
        exact = {i for i, _ in flat.search(query, 100)}
        approx = [i for i, _ in hnsw.search(query, 100)]
        assert len(approx) == 100
        overlaps.append(len(exact & set(approx)) / 100)
    assert float(np.mean(overlaps)) >= 0.9


def test_hnsw_returns_n_even_when_n_exceeds_ef_search(
    catalog: tuple[list[str], np.ndarray],
) -> None:
    ids, vectors = catalog
    hnsw = CandidateIndex(ids, vectors, "hnsw", HnswParams(m=8, ef_construction=40, ef_search=8))
    assert len(hnsw.search(vectors[0], 300)) == 300


def test_exclusions_never_shorten_the_list_while_items_remain() -> None:
    rng = np.random.default_rng(3)
    ids = [f"i{i}" for i in range(10)]
    index = CandidateIndex(ids, _unit(rng, 10, 4))
    got = index.search(np.ones(4, dtype=np.float32), 5, exclude=ids[:4])
    assert len(got) == 5
    assert not {i for i, _ in got} & set(ids[:4])
    assert len(index.search(np.ones(4, dtype=np.float32), 50, exclude=ids[:4])) == 6


def test_search_rejects_bad_queries(catalog: tuple[list[str], np.ndarray]) -> None:
    ids, vectors = catalog
    index = CandidateIndex(ids, vectors)
    with pytest.raises(ValueError, match="n must be"):
        index.search(vectors[0], 0)
    with pytest.raises(ValueError, match="values"):
        index.search(np.ones(31, dtype=np.float32), 5)
    bad = vectors[0].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        index.search(bad, 5)


def test_construction_rejects_inconsistent_inputs() -> None:
    v = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="item ids but"):
        CandidateIndex(["a", "b"], v)
    with pytest.raises(ValueError, match="unique"):
        CandidateIndex(["a", "a", "b"], v)
    with pytest.raises(ValueError, match="unknown index kind"):
        make_faiss_index(v, "ivf")
    with pytest.raises(ValueError, match="non-empty"):
        make_faiss_index(np.zeros((0, 3), dtype=np.float32), "flat")
    with pytest.raises(ValueError, match="HNSW needs"):
        HnswParams(m=1)


def test_hnsw_graph_is_saved_and_reused_from_the_version_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ids = [f"i{k}" for k in range(500)]
    vectors, other = _unit(rng, 500, 16), _unit(rng, 500, 16)
    params = HnswParams(m=8, ef_construction=40, ef_search=200)
    first = CandidateIndex(ids, vectors, "hnsw", params, graph_dir=tmp_path)
    graph = tmp_path / hnsw_file_name(params)
    assert graph.is_file()
    assert first.search(vectors[7], 1)[0][0] == "i7"
    # A graph over other vectors under the same name proves that the file, not a rebuild,
    # answers the next load.
    (tmp_path / "o").mkdir()
    CandidateIndex(ids, other, "hnsw", params, graph_dir=tmp_path / "o")
    (tmp_path / "o" / graph.name).replace(graph)
    reused = CandidateIndex(ids, vectors, "hnsw", params, graph_dir=tmp_path)
    assert reused.search(other[7], 1)[0][0] == "i7"


def test_damaged_or_mismatched_graph_files_are_rebuilt(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = [f"i{k}" for k in range(300)]
    vectors = _unit(rng, 300, 16)
    params = HnswParams(m=8, ef_construction=40)
    graph = tmp_path / hnsw_file_name(params)
    graph.write_bytes(b"not a faiss index")
    index = CandidateIndex(ids, vectors, "hnsw", params, graph_dir=tmp_path)
    assert index.search(vectors[3], 1)[0][0] == "i3"
    assert graph.stat().st_size > 1000
    smaller = CandidateIndex(ids[:200], vectors[:200], "hnsw", params, graph_dir=tmp_path)
    assert smaller.size == 200
    assert smaller.search(vectors[150], 1)[0][0] == "i150"
