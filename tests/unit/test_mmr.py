"""MMR (Carbonell and Goldstein 1998), vectorised, against a plain loop over the definition."""

from __future__ import annotations

import numpy as np
import pytest

from services.reranker.kernel import SimilarityKernel, normalise_relevance
from services.reranker.mmr import mmr


def _mmr_loop(relevance: np.ndarray, sim: np.ndarray, k: int, lam: float) -> list[int]:
    r = normalise_relevance(relevance)
    chosen: list[int] = []
    while len(chosen) < k:
        best, best_score = -1, -np.inf
        for i in range(len(r)):
            if i in chosen:
                continue
            penalty = max((sim[i, j] for j in chosen), default=0.0)
            score = lam * r[i] - (1 - lam) * penalty
            if score > best_score:
                best, best_score = i, score
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tradeoff", [0.2, 0.5, 0.8, 1.0])
def test_equals_the_definition(seed: int, tradeoff: float) -> None:
    rng = np.random.default_rng(seed)
    relevance = rng.normal(size=25)
    cats = [f"c{x}" for x in rng.integers(0, 5, size=25)] if seed % 2 else None
    kernel = SimilarityKernel(25, rng.normal(size=(25, 6)), cats)
    got = mmr(relevance, kernel, 12, tradeoff)
    assert got.indices.tolist() == _mmr_loop(relevance, kernel.matrix(), 12, 1 - tradeoff)
    assert got.diversified == 12


def test_scores_are_the_mmr_objective_at_pick_time() -> None:
    relevance = np.array([1.0, 0.0, 0.5])
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    got = mmr(relevance, SimilarityKernel(3, embeddings), 3, 0.5)
    assert got.indices.tolist() == [0, 1, 2]
    # 0.5 * 1 - 0.5 * 0; then 0.5 * 0 - 0.5 * 0; then 0.5 * 0.5 - 0.5 * 1.
    assert got.scores.tolist() == pytest.approx([0.5, 0.0, -0.25])


def test_tradeoff_zero_is_the_relevance_order() -> None:
    rng = np.random.default_rng(1)
    relevance = rng.normal(size=40)
    got = mmr(relevance, SimilarityKernel(40, rng.normal(size=(40, 5))), 15, 0.0)
    assert got.indices.tolist() == np.argsort(-relevance, kind="stable")[:15].tolist()


def test_duplicates_are_never_both_chosen_at_high_diversity() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(5, 32))
    embeddings = np.concatenate([base, base])
    relevance = np.concatenate([rng.uniform(0, 1, 5), rng.uniform(1, 2, 5)])
    kernel = SimilarityKernel(10, embeddings)
    for tradeoff in (0.7, 0.9, 1.0):
        got = mmr(relevance, kernel, 5, tradeoff).indices
        assert len({int(i) % 5 for i in got}) == 5


def test_ties_go_to_the_lower_position() -> None:
    # At full diversity every first score is 0; rerank() puts the most relevant first.
    got = mmr(np.array([0.1, 0.7, 0.3]), SimilarityKernel(3, np.eye(3)), 2, 1.0)
    assert got.indices.tolist() == [0, 1]


def test_category_cap_can_leave_fewer_than_k() -> None:
    cats = ["a", "a", "a", "b"]
    got = mmr(np.arange(4.0), SimilarityKernel(4, None, cats), 4, 0.5, max_per_category=1)
    assert sorted(got.indices.tolist()) == [2, 3]


@pytest.mark.parametrize(
    ("k", "tradeoff", "n_rel", "message"),
    [(0, 0.5, 3, "k must be"), (2, -0.1, 3, "tradeoff"), (2, 0.5, 2, "one score")],
)
def test_bad_arguments_raise(k: int, tradeoff: float, n_rel: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mmr(np.zeros(n_rel), SimilarityKernel(3, np.eye(3)), k, tradeoff)
