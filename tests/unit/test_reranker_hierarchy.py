"""The hierarchical category kernel: PSD with a unit diagonal for any paths and level weights,
similarity growing with the shared prefix depth, leaf-level near-duplicates spread by DPP and
MMR, and category caps applied at a chosen level."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reranker.kernel import SimilarityKernel, level_weights_of
from services.reranker.rerank import Method, RerankParams, rerank
from shared import metrics
from shared.selection import Category, category_codes, top_k_by_category

_paths = st.one_of(
    st.sampled_from(["", "a", "b"]),  # a label, the one-level path of older callers
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=4).map(tuple),
)
_weights = st.lists(st.floats(0.0, 10.0), min_size=1, max_size=5).filter(lambda b: sum(b) > 0)


def _path(c: Category) -> tuple[str, ...]:
    return ((c,) if c else ()) if isinstance(c, str) else tuple(c)


def _shared_depth(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    depth = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        depth += 1
    return depth


def _reference_h(paths: list[Category], weights: list[float]) -> np.ndarray:
    """H written out longhand: the summed weights of every level at which i and j agree."""
    b = np.asarray(weights) / sum(weights)
    p = [_path(c) for c in paths]
    n = len(p)
    h = np.eye(n)
    for i in range(n):
        for j in range(n):
            if i == j or not p[i] or not p[j]:
                continue
            if p[i] == p[j]:
                h[i, j] = 1.0  # the same path: the same category at every level
            else:
                h[i, j] = b[: _shared_depth(p[i], p[j])].sum()
    return h


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_paths, min_size=1, max_size=14),
    _weights,
    st.floats(0.0, 1.0),
    st.integers(0, 4),
    st.integers(0, 2**32 - 1),
)
def test_any_paths_and_weights_give_a_psd_kernel_with_a_unit_diagonal(
    paths: list[Category], weights: list[float], w: float, d: int, seed: int
) -> None:
    n = len(paths)
    embeddings = np.random.default_rng(seed).normal(size=(n, d)) if d else None
    s = SimilarityKernel(n, embeddings, paths, w, level_weights=weights).matrix()
    assert np.array_equal(s, s.T)
    assert np.all(np.diag(s) == 1.0)
    assert float(np.linalg.eigvalsh(s).min()) > -1e-9
    assert np.all(np.abs(s) <= 1.0 + 1e-12)
    if embeddings is None:
        assert s == pytest.approx(_reference_h(paths, weights), abs=1e-12)


def test_similarity_grows_with_the_shared_prefix_depth() -> None:
    paths = [
        ("toys", "crafts", "crayons"),
        ("toys", "crafts", "crayons"),
        ("toys", "crafts", "paint set"),
        ("toys", "outdoor", "kite"),
        ("home", "kitchen", "mug"),
        (),
    ]
    h = SimilarityKernel(6, None, paths, level_weights=(0.2, 0.3, 0.5)).row(0)
    assert h.tolist() == pytest.approx([1.0, 1.0, 0.5, 0.2, 0.0, 0.0])
    # Weights are scaled to sum to 1, so only their ratios matter.
    assert SimilarityKernel(6, None, paths, level_weights=(2, 3, 5)).row(0) == pytest.approx(h)


def test_shorter_paths_are_their_own_category_below_their_leaf() -> None:
    paths = [("toys",), ("toys",), ("toys", "crafts"), ("toys", "crafts", "crayons")]
    h = SimilarityKernel(4, None, paths, level_weights=(0.2, 0.3, 0.5)).matrix()
    assert h[0, 1] == 1.0  # the same path, however short
    assert h[0, 2] == pytest.approx(0.2)
    assert h[2, 3] == pytest.approx(0.5)


def test_labels_keep_the_flat_kernel_whatever_the_level_weights() -> None:
    rng = np.random.default_rng(4)
    e = rng.normal(size=(6, 3))
    labels = ["a", "b", "a", "", "c", "b"]
    flat = SimilarityKernel(6, e, labels, 0.4, level_weights=(1.0,)).matrix()
    deep = SimilarityKernel(6, e, labels, 0.4, level_weights=(0.2, 0.3, 0.5)).matrix()
    assert deep == pytest.approx(flat, abs=1e-15)


def test_a_single_level_weight_is_same_top_level_or_not() -> None:
    paths = [("toys", "crafts", "crayons"), ("toys", "outdoor", "kite"), ("home", "mug")]
    h = SimilarityKernel(3, None, paths, level_weights=(1.0,)).matrix()
    assert h.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize("weights", [(), (0.0, 0.0), (-0.1, 1.0), (float("nan"), 1.0)])
def test_unusable_level_weights_raise(weights: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="level weights"):
        level_weights_of(weights)
    with pytest.raises(ValueError, match="level weights"):
        SimilarityKernel(2, None, ["a", "b"], level_weights=weights)


# ---- the demo's failure: one top level, near-duplicates at the leaf ------------------------

# All "toys", as on the demo page: four crayons and three paint sets are the most relevant.
DEMO = [
    *[("toys", "crafts", "crayons")] * 3,
    *[("toys", "crafts", "paint set")] * 2,
    ("toys", "crafts", "crayons"),
    ("toys", "crafts", "paint set"),
    ("toys", "outdoor", "kite"),
    ("toys", "games", "board game"),
    ("toys", "games", "jigsaw puzzle"),
    ("toys", "outdoor", "frisbee"),
    ("toys", "crafts", "sticker book"),
]
DEMO_IDS = [f"item-{i}" for i in range(len(DEMO))]
LEAVES = len(set(DEMO))  # 7


def _near_duplicates(indices: np.ndarray) -> int:
    return metrics.near_duplicates(
        [DEMO_IDS[i] for i in indices], dict(zip(DEMO_IDS, DEMO, strict=True))
    )


@pytest.mark.parametrize(
    ("method", "embeddings"),
    [
        (Method.DPP, None),
        (Method.MMR, None),
        # Embeddings that cannot tell the toys apart, as a text embedding dominated by "toys".
        (Method.DPP, np.ones((len(DEMO), 4))),
    ],
)
def test_leaf_near_duplicates_are_spread_by_the_hierarchical_kernel(
    method: Method, embeddings: np.ndarray | None
) -> None:
    relevance = np.linspace(1.0, 0.0, len(DEMO))
    k = 8

    def run(weights: tuple[float, ...]) -> np.ndarray:
        params = RerankParams(k=k, method=method, tradeoff=0.7, level_weights=weights)
        return rerank(relevance, embeddings, DEMO, params).indices

    flat = run((1.0,))
    assert flat.tolist() == list(range(k))  # one top level: nothing to tell the items apart
    assert _near_duplicates(flat) == 9  # four crayons and three paint sets on one page
    deep = run((0.2, 0.3, 0.5))
    assert len({DEMO[i] for i in deep[:LEAVES]}) == LEAVES  # every leaf once before a repeat
    assert _near_duplicates(deep) == 1  # the fewest eight items from seven leaves allow
    assert deep[0] == 0  # the most relevant still comes first


# ---- caps at a level ------------------------------------------------------------------------

CAPPED = [
    ("toys", "crafts", "crayons"),
    ("toys", "crafts", "crayons"),
    ("toys", "crafts", "paint set"),
    ("toys", "outdoor", "kite"),
    ("home", "kitchen", "mug"),
    ("home", "kitchen", "teapot"),
    (),
    (),
]


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize(
    ("level", "expected"),
    [
        # Top level: one toy, one home item, and the two without a category (never capped).
        (1, [0, 4, 6, 7]),
        # Second level: one of crafts, outdoor, kitchen.
        (2, [0, 3, 4, 6, 7]),
        # Leaf: one per leaf, the second crayon dropped.
        (3, [0, 2, 3, 4, 5, 6, 7]),
        (4, [0, 2, 3, 4, 5, 6, 7]),
    ],
)
def test_the_cap_applies_at_the_chosen_level(
    method: Method, level: int, expected: list[int]
) -> None:
    relevance = np.linspace(1.0, 0.3, len(CAPPED))
    params = RerankParams(k=8, method=method, tradeoff=0.0, max_per_category=1, cap_level=level)
    got = rerank(relevance, None, CAPPED, params)
    assert got.indices.tolist() == expected
    # Any trade-off keeps the cap, and the cap alone decides how many fit.
    for tradeoff in (0.5, 1.0):
        diverse = rerank(
            relevance,
            None,
            CAPPED,
            RerankParams(
                k=8, method=method, tradeoff=tradeoff, max_per_category=1, cap_level=level
            ),
        )
        assert sorted(diverse.indices.tolist()) == expected
        assert len(set(category_codes(CAPPED, level)[diverse.indices])) == len(expected)


def test_shared_capped_top_k_takes_the_level() -> None:
    relevance = [5.0, 4.0, 3.0, 2.0, 1.0]
    paths = [("a", "x"), ("a", "x"), ("a", "y"), ("b", "z"), ("b", "z")]
    assert top_k_by_category(relevance, paths, 5, 1) == [0, 3]
    assert top_k_by_category(relevance, paths, 5, 1, level=2) == [0, 2, 3]
    assert top_k_by_category(relevance, paths, 5, 1, taken=[("a", "y")], level=2) == [0, 3]
    # Labels and paths mix: a label is its one-level path.
    assert top_k_by_category([2.0, 1.0], ["a", ("a", "x")], 2, 1) == [0]
    with pytest.raises(ValueError, match="level"):
        category_codes(paths, 0)
