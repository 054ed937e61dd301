"""The method dispatch: relevance-order tie-breaking, index mapping, category caps."""

from __future__ import annotations

import numpy as np
import pytest

from services.reranker.rerank import Method, RerankParams, rerank

CATS = ["shoes", "shoes", "shoes", "bags", "bags", "", "", "hats"]


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=len(CATS)), rng.normal(size=(len(CATS), 5))


@pytest.mark.parametrize("method", list(Method))
def test_tradeoff_zero_reproduces_the_relevance_order(method: Method) -> None:
    relevance, embeddings = _data()
    got = rerank(relevance, embeddings, CATS, RerankParams(k=8, method=method, tradeoff=0.0))
    assert got.indices.tolist() == np.argsort(-relevance, kind="stable").tolist()


@pytest.mark.parametrize("method", [Method.DPP, Method.MMR])
def test_first_pick_is_the_most_relevant_at_full_diversity(method: Method) -> None:
    relevance, embeddings = _data(1)
    got = rerank(relevance, embeddings, None, RerankParams(k=3, method=method, tradeoff=1.0))
    assert got.indices[0] == int(np.argmax(relevance))


def test_none_ignores_the_tradeoff() -> None:
    relevance, embeddings = _data(2)
    got = rerank(relevance, embeddings, None, RerankParams(k=4, method=Method.NONE, tradeoff=1.0))
    assert got.indices.tolist() == np.argsort(-relevance, kind="stable")[:4].tolist()
    assert got.scores.tolist() == relevance[got.indices].tolist()


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("tradeoff", [0.0, 0.5, 1.0])
def test_category_cap_binds_for_every_method(method: Method, tradeoff: float) -> None:
    relevance, embeddings = _data(3)
    relevance[:3] += 10.0  # the three shoes are by far the most relevant
    params = RerankParams(k=8, method=method, tradeoff=tradeoff, max_per_category=1)
    got = rerank(relevance, embeddings, CATS, params)
    picked = [CATS[i] for i in got.indices]
    labelled = [c for c in picked if c]
    assert len(labelled) == len(set(labelled))
    # shoes, bags, hats once each, and both uncategorised items (never capped).
    assert len(picked) == 5
    assert picked.count("") == 2


def test_categories_alone_diversify() -> None:
    relevance = np.array([5.0, 4.0, 3.0, 1.0])
    cats = ["a", "a", "a", "b"]
    got = rerank(relevance, None, cats, RerankParams(k=2, method=Method.DPP, tradeoff=0.9))
    assert got.indices.tolist() == [0, 3]


def test_window_parameter_reaches_dpp() -> None:
    relevance = np.array([1.0, 0.9, 0.0])
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    whole = rerank(relevance, embeddings, None, RerankParams(k=3, method=Method.DPP, tradeoff=1.0))
    windowed = rerank(
        relevance, embeddings, None, RerankParams(k=3, method=Method.DPP, tradeoff=1.0, window=2)
    )
    assert whole.diversified == 2
    assert windowed.diversified == 3
    assert windowed.indices.tolist() == [0, 2, 1]
