"""services.orchestrator.blend: the ranker/prior relevance blend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.orchestrator.blend import blend, standardise

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_weight_one_is_the_ranker_alone_and_zero_the_prior_order() -> None:
    ranker = [3.0, -1.0, 0.5, 2.0]
    prior = [0.1, 0.9, 0.5, 0.3]
    assert blend(ranker, prior, 1.0).tolist() == ranker
    assert np.argsort(-blend(ranker, prior, 0.0)).tolist() == [1, 2, 3, 0]


def test_scales_do_not_matter_only_standardised_positions() -> None:
    ranker = np.array([1.0, 2.0, 3.0, 4.0])
    prior = np.array([4.0, 3.0, 2.0, 1.0])
    # The prior in thousands (popularity counts) weighs the same as in units.
    assert np.allclose(blend(ranker, prior, 0.5), blend(ranker, prior * 1000, 0.5))
    # Opposite orders, equal weights: everything ties at zero.
    assert np.allclose(blend(ranker, prior, 0.5), 0.0)
    # A larger ranker share follows the ranker.
    assert np.argmax(blend(ranker, prior, 0.75)) == 3


def test_constant_scores_and_empty_lists_are_safe() -> None:
    assert standardise([2.0, 2.0, 2.0]).tolist() == [0.0, 0.0, 0.0]
    # Found by hypothesis: equal values whose mean rounds away from them.
    assert standardise([0.2, 0.2, 0.2]).tolist() == [0.0, 0.0, 0.0]
    assert blend([], [], 0.5).size == 0
    assert np.argsort(-blend([1.0, 1.0, 1.0], [0.2, 0.9, 0.1], 0.5)).tolist() == [1, 0, 2]


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_weight_outside_unit_interval_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        blend([1.0], [1.0], weight)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per candidate"):
        blend([1.0, 2.0], [1.0], 0.5)


@given(
    st.lists(st.tuples(finite, finite), min_size=1, max_size=40),
    st.floats(min_value=0.0, max_value=0.999),
)
def test_blend_is_finite_and_standardised(pairs: list[tuple[float, float]], w: float) -> None:
    ranker, prior = (np.array(x) for x in zip(*pairs, strict=True))
    out = blend(ranker, prior, w)
    assert np.isfinite(out).all()
    assert abs(float(out.mean())) < 1e-6
