"""Fast greedy DPP (Chen, Zhang and Zhou 2018) against the naive greedy log-det computation."""

from __future__ import annotations

import numpy as np
import pytest

from services.reranker import dpp
from services.reranker.dpp import alpha_for, dpp_greedy, greedy_logdet_reference
from services.reranker.kernel import SimilarityKernel, normalise_relevance


def _case(seed: int, n: int, d: int, with_categories: bool) -> tuple[np.ndarray, SimilarityKernel]:
    rng = np.random.default_rng(seed)
    relevance = rng.normal(size=n)
    embeddings = rng.normal(size=(n, d))
    cats = [f"c{x}" for x in rng.integers(0, 4, size=n)] if with_categories else None
    return relevance, SimilarityKernel(n, embeddings, cats, category_weight=0.3)


def _full_kernel(relevance: np.ndarray, kernel: SimilarityKernel, tradeoff: float) -> np.ndarray:
    q = np.exp(alpha_for(tradeoff) * normalise_relevance(relevance))
    return q[:, None] * kernel.matrix() * q[None, :]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("tradeoff", [0.15, 0.5, 1.0])
def test_whole_list_equals_bruteforce_greedy(seed: int, tradeoff: float) -> None:
    # d >= k keeps every residual well above eps, so no early stop interferes.
    relevance, kernel = _case(seed, n=24, d=12, with_categories=seed % 2 == 1)
    got = dpp_greedy(relevance, kernel, 10, tradeoff)
    want = greedy_logdet_reference(_full_kernel(relevance, kernel, tradeoff), 10)
    assert got.indices.tolist() == want
    assert got.diversified == 10


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("window", [2, 3, 5])
def test_sliding_window_equals_bruteforce_greedy(seed: int, window: int) -> None:
    # Long lists (k = N) force many window slides and Givens downdates.
    relevance, kernel = _case(100 + seed, n=20, d=8, with_categories=seed % 2 == 0)
    got = dpp_greedy(relevance, kernel, 20, 0.4, window=window)
    want = greedy_logdet_reference(_full_kernel(relevance, kernel, 0.4), 20, window=window)
    assert got.indices.tolist() == want


def test_exact_log_path_equals_bruteforce(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dpp, "_LINEAR_MAX_EXPONENT", -1.0)
    relevance, kernel = _case(7, n=18, d=9, with_categories=True)
    got = dpp_greedy(relevance, kernel, 9, 0.3, window=3)
    want = greedy_logdet_reference(_full_kernel(relevance, kernel, 0.3), 9, window=3)
    assert got.indices.tolist() == want


def test_selection_scores_are_log_det_gains() -> None:
    relevance, kernel = _case(3, n=15, d=8, with_categories=False)
    got = dpp_greedy(relevance, kernel, 6, 0.5)
    full = _full_kernel(relevance, kernel, 0.5)
    chosen = got.indices.tolist()
    for step in range(6):
        sub = chosen[: step + 1]
        before = np.linalg.slogdet(full[np.ix_(sub[:-1], sub[:-1])])[1] if step else 0.0
        gain = np.linalg.slogdet(full[np.ix_(sub, sub)])[1] - before
        assert got.scores[step] == pytest.approx(gain, abs=1e-8)


def test_tradeoff_zero_is_the_relevance_order_with_ties_stable() -> None:
    relevance = np.array([0.2, 0.9, 0.9, -1.0, 0.5, 0.9])
    kernel = SimilarityKernel(6, np.ones((6, 3)))
    got = dpp_greedy(relevance, kernel, 5, 0.0)
    assert got.indices.tolist() == [1, 2, 5, 4, 0]
    assert got.scores.tolist() == [0.9, 0.9, 0.9, 0.5, 0.2]


def test_tiny_tradeoff_follows_relevance_without_overflow() -> None:
    # alpha = 5000: exp(2 alpha r) would overflow; the log-domain path must stay finite.
    relevance, kernel = _case(11, n=30, d=16, with_categories=False)
    got = dpp_greedy(relevance, kernel, 10, 1e-4)
    assert got.indices.tolist() == np.argsort(-relevance, kind="stable")[:10].tolist()
    assert np.isfinite(got.scores).all()


def test_subnormal_tradeoff_is_finite_and_follows_relevance() -> None:
    relevance, kernel = _case(12, n=20, d=8, with_categories=False)
    got = dpp_greedy(relevance, kernel, 8, 5e-324)
    assert got.indices.tolist() == np.argsort(-relevance, kind="stable")[:8].tolist()
    assert np.isfinite(got.scores).all()


def test_duplicates_are_never_both_chosen_at_high_diversity() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    embeddings = np.concatenate([base, base])  # item i + 6 duplicates item i
    relevance = np.concatenate([rng.uniform(0, 1, 6), rng.uniform(1, 2, 6)])
    kernel = SimilarityKernel(12, embeddings)
    for tradeoff in (0.7, 0.9, 1.0):
        got = dpp_greedy(relevance, kernel, 6, tradeoff).indices
        assert len({int(i) % 6 for i in got}) == 6


def test_duplicates_and_zero_vectors_stop_early_and_fill_by_relevance() -> None:
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    relevance = np.array([0.5, 0.9, 0.1, 0.2, 0.8])
    got = dpp_greedy(relevance, SimilarityKernel(5, embeddings), 5, 0.9)
    # One copy of the direction, then the two zero vectors (orthogonal to everything), then
    # no residual is left: the remaining duplicates follow in relevance order.
    assert got.indices.tolist() == [1, 3, 2, 4, 0]
    assert got.diversified == 3
    assert np.isfinite(got.scores).all()
    assert got.scores[3] < -600  # log of a floored, vanished residual


def test_all_identical_items_still_return_k() -> None:
    got = dpp_greedy(np.array([3.0, 1.0, 2.0]), SimilarityKernel(3, np.ones((3, 4))), 3, 0.8)
    assert got.indices.tolist() == [0, 2, 1]
    assert got.diversified == 1


def test_sliding_window_lets_an_item_back_once_its_twin_left_the_window() -> None:
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    relevance = np.array([1.0, 0.9, 0.0])
    kernel = SimilarityKernel(3, embeddings)
    assert dpp_greedy(relevance, kernel, 3, 1.0, window=2).diversified == 3
    assert dpp_greedy(relevance, kernel, 3, 1.0).diversified == 2


def test_category_cap_is_respected_and_k_reached_when_feasible() -> None:
    relevance, kernel = _case(5, n=30, d=6, with_categories=True)
    got = dpp_greedy(relevance, kernel, 8, 0.5, max_per_category=2)
    codes = kernel.codes
    assert codes is not None
    assert np.bincount(codes[got.indices]).max() <= 2
    assert got.indices.size == 8


def test_alpha_mapping() -> None:
    assert alpha_for(1.0) == 0.0
    assert alpha_for(0.5) == pytest.approx(0.5)
    assert alpha_for(0.25) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="alpha"):
        alpha_for(0.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"tradeoff": 1.5}, "tradeoff"),
        ({"window": 1}, "window"),
        ({"window": -2}, "window"),
        ({"max_per_category": -1}, "max_per_category"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, float], message: str) -> None:
    args: dict = {"k": 3, "tradeoff": 0.5, **kwargs}
    with pytest.raises(ValueError, match=message):
        dpp_greedy(
            np.zeros(4), SimilarityKernel(4, np.eye(4)), args.pop("k"), args.pop("tradeoff"), **args
        )


def test_relevance_must_match_the_kernel() -> None:
    with pytest.raises(ValueError, match="one score per kernel item"):
        dpp_greedy(np.zeros(3), SimilarityKernel(4, np.eye(4)), 2, 0.5)
