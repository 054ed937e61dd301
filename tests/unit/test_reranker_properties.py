"""Property tests: any valid input gives a duplicate-free, finite, deterministic selection of
min(k, N) items (fewer only as far as the category cap forces)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reranker.rerank import Method, RerankParams, rerank

_floats = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),  # down to subnormals, up to 1.8e308
)


@st.composite
def requests(
    draw: st.DrawFn,
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, RerankParams]:
    n = draw(st.integers(1, 16))
    d = draw(st.integers(0, 5))
    relevance = np.array(draw(st.lists(_floats, min_size=n, max_size=n)))
    embeddings = None
    if d:
        rows = draw(st.lists(st.lists(_floats, min_size=d, max_size=d), min_size=n, max_size=n))
        embeddings = np.array(rows)
        if n > 1 and draw(st.booleans()):
            embeddings[-1] = embeddings[0]  # an exact duplicate
    categories = None
    if draw(st.booleans()):
        categories = draw(st.lists(st.sampled_from(["", "a", "b", "c"]), min_size=n, max_size=n))
    params = RerankParams(
        k=draw(st.integers(1, 20)),
        method=draw(st.sampled_from(list(Method))),
        tradeoff=draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))),
        max_per_category=draw(st.integers(0, 3)),
        window=draw(st.sampled_from([0, 2, 3, 7])),
    )
    return relevance, embeddings, categories, params


def _feasible(n: int, categories: list[str] | None, k: int, cap: int) -> int:
    if not cap or not categories:
        return min(k, n)
    counts: dict[str, int] = {}
    for c in categories:
        counts[c] = counts.get(c, 0) + 1
    allowed = sum(v if c == "" else min(v, cap) for c, v in counts.items())
    return min(k, allowed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_selection_is_a_valid_deterministic_subset(
    case: tuple[np.ndarray, np.ndarray | None, list[str] | None, RerankParams],
) -> None:
    relevance, embeddings, categories, params = case
    got = rerank(relevance, embeddings, categories, params)
    again = rerank(relevance, embeddings, categories, params)
    n = relevance.size
    idx = got.indices.tolist()
    assert len(idx) == len(set(idx))
    assert all(0 <= i < n for i in idx)
    assert len(idx) == _feasible(n, categories, params.k, params.max_per_category)
    assert np.isfinite(got.scores).all()
    assert got.scores.shape == got.indices.shape
    assert 0 <= got.diversified <= len(idx)
    assert idx == again.indices.tolist()
    assert got.scores.tolist() == again.scores.tolist()
    if params.max_per_category and categories:
        labels = [categories[i] for i in idx if categories[i]]
        assert all(labels.count(c) <= params.max_per_category for c in set(labels))
