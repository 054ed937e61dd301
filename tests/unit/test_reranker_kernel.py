"""The similarity kernel S is PSD with a unit diagonal in every configuration."""

from __future__ import annotations

import numpy as np
import pytest

from services.reranker.kernel import SimilarityKernel, category_codes, normalise_relevance


def _min_eig(s: np.ndarray) -> float:
    return float(np.linalg.eigvalsh((s + s.T) / 2).min())


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_blend_with_duplicates_and_zero_vectors_is_psd_with_unit_diagonal(weight: float) -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(size=(12, 4))
    e[3] = e[1]  # duplicate
    e[5] = 0.0  # no signal
    e[7] = -e[2]  # anti-correlated
    cats = ["a", "b", "", "a", "c", "", "b", "a", "", "c", "c", "a"]
    s = SimilarityKernel(12, e, cats, category_weight=weight).matrix()
    assert np.allclose(s, s.T)
    assert np.all(np.diag(s) == 1.0)
    assert _min_eig(s) > -1e-10
    assert s[1, 3] == pytest.approx(1.0 - weight)  # same vector, different category
    assert s[5, [i for i in range(12) if i != 5]].max() <= weight + 1e-12


def test_category_only_and_identity_fallbacks() -> None:
    cats = ["x", "y", "x"]
    only_cats = SimilarityKernel(3, None, cats, category_weight=0.3)
    assert only_cats.category_weight == 1.0
    assert only_cats.matrix().tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    assert SimilarityKernel(3, None, ["", "", ""]).matrix().tolist() == np.eye(3).tolist()
    assert SimilarityKernel(2, np.zeros((2, 0))).matrix().tolist() == np.eye(2).tolist()
    assert SimilarityKernel(0).matrix().shape == (0, 0)


def test_embeddings_without_categories_use_cosine_only() -> None:
    kernel = SimilarityKernel(2, np.array([[1.0, 0.0], [1.0, 1.0]]), None, category_weight=0.5)
    assert kernel.category_weight == 0.0
    assert kernel.row(0)[1] == pytest.approx(np.sqrt(0.5))


def test_empty_categories_are_each_their_own() -> None:
    codes = category_codes(["a", "", "a", "", "b"])
    assert codes[0] == codes[2]
    assert len({codes[1], codes[3], codes[0], codes[4]}) == 4


def test_extreme_magnitudes_keep_their_direction() -> None:
    e = np.array([[1e300, 1e300], [1e-300, 1e-300], [3e-320, 0.0], [0.0, 2.0]])
    s = SimilarityKernel(4, e).matrix()
    assert np.isfinite(s).all()
    assert s[0, 1] == pytest.approx(1.0)
    assert s[2, 3] == pytest.approx(0.0)
    assert s[0, 2] == pytest.approx(np.sqrt(0.5))


def test_normalise_relevance() -> None:
    assert normalise_relevance(np.array([-1.7e308, 1.7e308, 0.0])).tolist() == [0.0, 1.0, 0.5]
    assert normalise_relevance(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert normalise_relevance(np.array([7.0, 7.0])).tolist() == [0.0, 0.0]
    assert normalise_relevance(np.array([])).size == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"n": 2, "embeddings": np.ones((3, 2))}, "expected 2 embeddings"),
        ({"n": 2, "categories": ["a"]}, "expected 2 categories"),
        ({"n": 2, "category_weight": 1.5}, "category_weight"),
    ],
)
def test_bad_shapes_raise(args: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimilarityKernel(**args)
