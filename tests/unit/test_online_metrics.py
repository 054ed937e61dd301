"""The intervals of the online metrics against published values."""

from __future__ import annotations

import pytest

from services.feature_store.online_metrics import Rate, newcombe_difference, wilson_interval


def test_wilson_interval_matches_newcombes_table() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
    # method 3 (Wilson score): 81/263 -> 0.2553-0.3662; 0/20 -> 0-0.1611; 1/29 -> 0.0061-0.1718.
    for (x, n), (low, high) in {
        (81, 263): (0.2553, 0.3662),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        got = wilson_interval(x, n)
        assert got == pytest.approx((low, high), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_difference_interval_matches_newcombes_method_10() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", Table II, method 10: 56/70 - 48/80 -> 0.0524 to 0.3339; 9/10 - 3/10 ->
    # 0.1705 to 0.8090.
    d = newcombe_difference(Rate(56, 70), Rate(48, 80))
    assert d.difference == pytest.approx(0.2)
    assert (d.low, d.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    d = newcombe_difference(Rate(9, 10), Rate(3, 10))
    assert (d.low, d.high) == pytest.approx((0.1705, 0.8090), abs=1e-4)
