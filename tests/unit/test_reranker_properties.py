"""Property tests: any valid input gives a duplicate-free, finite, deterministic selection of
min(k, N) items (fewer only as far as the category cap forces)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reranker.rerank import Method, RerankParams, rerank
from shared.selection import Category, category_path

_categories = st.one_of(
    st.sampled_from(["", "a", "b", "c"]),
    st.lists(st.sampled_from(["a", "b"]), max_size=3).map(tuple),
)
_floats = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),  # down to subnormals, up to 1.8e308
)


@st.composite
def requests(
    draw: st.DrawFn,
) -> tuple[np.ndarray, np.ndarray | None, list[Category] | None, RerankParams]:
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
        categories = draw(st.lists(_categories, min_size=n, max_size=n))
    params = RerankParams(
        k=draw(st.integers(1, 20)),
        method=draw(st.sampled_from(list(Method))),
        tradeoff=draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))),
        max_per_category=draw(st.integers(0, 3)),
        window=draw(st.sampled_from([0, 2, 3, 7])),
        cap_level=draw(st.integers(1, 3)),
        level_weights=draw(st.sampled_from([(1.0,), (0.2, 0.3, 0.5), (0.0, 1.0)])),
    )
    return relevance, embeddings, categories, params


def _capped(categories: list[Category], level: int) -> list[tuple[str, ...]]:
    """Each item's category at the cap level; () for an item without one (never capped)."""
    return [category_path(c)[:level] for c in categories]


def _feasible(n: int, categories: list[Category] | None, k: int, cap: int, level: int) -> int:
    if not cap or not categories:
        return min(k, n)
    counts: dict[tuple[str, ...], int] = {}
    for c in _capped(categories, level):
        counts[c] = counts.get(c, 0) + 1
    allowed = sum(v if c == () else min(v, cap) for c, v in counts.items())
    return min(k, allowed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_selection_is_a_valid_deterministic_subset(
    case: tuple[np.ndarray, np.ndarray | None, list[Category] | None, RerankParams],
) -> None:
    relevance, embeddings, categories, params = case
    got = rerank(relevance, embeddings, categories, params)
    again = rerank(relevance, embeddings, categories, params)
    n = relevance.size
    idx = got.indices.tolist()
    assert len(idx) == len(set(idx))
    assert all(0 <= i < n for i in idx)
    assert len(idx) == _feasible(n, categories, params.k, params.max_per_category, params.cap_level)
    assert np.isfinite(got.scores).all()
    assert got.scores.shape == got.indices.shape
    assert 0 <= got.diversified <= len(idx)
    assert idx == again.indices.tolist()
    assert got.scores.tolist() == again.scores.tolist()
    if params.max_per_category and categories:
        capped = _capped(categories, params.cap_level)
        labels = [capped[i] for i in idx if capped[i]]
        assert all(labels.count(c) <= params.max_per_category for c in set(labels))
