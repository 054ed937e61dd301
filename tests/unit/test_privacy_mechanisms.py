"""OpenDP mechanisms: calibration against the privacy map, and a statistical test that the
noise actually drawn has mean 0 and the calibrated scale.

OpenDP samples from its own CSPRNG, which cannot be seeded by design; the statistical checks
therefore use a fixed sample count and a 5-standard-error tolerance (false alarm rate below
1e-6), and each test also shows the same check rejecting noise drawn at a 10% wrong scale.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from services.privacy_gateway.mechanisms import (
    Calibration,
    Mechanism,
    calibrate,
    contribution_bounded_counts,
    measurement,
    noisy_top_k,
    noisy_top_k_scale,
    privacy_spent,
    release_counts,
)
from shared.errors import InvalidArgument

DRAWS = 50_000
Z = 5.0


def discrete_laplace_variance(scale: float) -> float:
    """Variance of P(x) ~ exp(-|x| / scale) on the integers."""
    q = math.exp(-1.0 / scale)
    return 2.0 * q / (1.0 - q) ** 2


def discrete_gaussian_variance(sigma: float) -> float:
    """Variance of P(x) ~ exp(-x^2 / (2 sigma^2)) on the integers, summed to 40 sigma."""
    x = np.arange(-int(40 * sigma) - 1, int(40 * sigma) + 2, dtype=np.float64)
    w = np.exp(-(x**2) / (2 * sigma**2))
    return float((w * x**2).sum() / w.sum())


def matches(noise: np.ndarray, variance: float, excess_kurtosis: float) -> tuple[bool, str]:
    """Mean within Z standard errors of 0 and variance within Z standard errors of
    ``variance`` (the standard error of a sample variance is sigma^2 sqrt((kurtosis - 1)/n))."""
    n = len(noise)
    mean_ok = abs(noise.mean()) <= Z * math.sqrt(variance / n)
    var_se = variance * math.sqrt((excess_kurtosis + 2.0) / n)
    var_ok = abs(noise.var() - variance) <= Z * var_se
    return mean_ok and var_ok, f"mean={noise.mean():.4f} var={noise.var():.3f} want={variance:.3f}"


def _noise(calibration: Calibration, counts: list[int]) -> np.ndarray:
    return np.asarray(release_counts(counts, calibration), dtype=np.float64) - np.asarray(counts)


def test_discrete_laplace_noise_matches_its_calibration() -> None:
    cal = calibrate(Mechanism.LAPLACE, epsilon=0.5, delta=0.0, max_contributions=4)
    assert cal.scale == pytest.approx(4 / 0.5)
    assert cal.sensitivity == 4
    counts = [int(c) for c in np.arange(DRAWS) % 1000]
    ok, detail = matches(_noise(cal, counts), discrete_laplace_variance(cal.scale), 3.0)
    assert ok, detail
    wrong = replace(cal, scale=cal.scale * 1.1)
    ok, detail = matches(_noise(wrong, counts), discrete_laplace_variance(cal.scale), 3.0)
    assert not ok, f"a 10% wrong scale went unnoticed: {detail}"


def test_discrete_gaussian_noise_matches_its_calibration() -> None:
    cal = calibrate(Mechanism.GAUSSIAN, epsilon=1.0, delta=1e-6, max_contributions=4)
    assert cal.sensitivity == pytest.approx(2.0)
    counts = [7] * DRAWS
    ok, detail = matches(_noise(cal, counts), discrete_gaussian_variance(cal.scale), 0.0)
    assert ok, detail
    wrong = replace(cal, scale=cal.scale / 1.1)
    ok, detail = matches(_noise(wrong, counts), discrete_gaussian_variance(cal.scale), 0.0)
    assert not ok, f"a 10% wrong scale went unnoticed: {detail}"


@pytest.mark.parametrize(
    ("mechanism", "epsilon", "delta"),
    [(Mechanism.LAPLACE, 0.1, 0.0), (Mechanism.LAPLACE, 2.0, 0.0), (Mechanism.GAUSSIAN, 0.5, 1e-7)],
)
def test_calibrated_scale_is_the_smallest_that_meets_the_target(
    mechanism: Mechanism, epsilon: float, delta: float
) -> None:
    cal = calibrate(mechanism, epsilon, delta, max_contributions=10)
    spent_eps, spent_delta = privacy_spent(cal)
    assert spent_eps <= epsilon * (1 + 1e-9)
    assert spent_delta <= delta
    tighter = privacy_spent(replace(cal, scale=cal.scale * 0.98))
    assert tighter[0] > epsilon


def test_gaussian_scale_grows_with_the_square_root_of_the_contribution_bound() -> None:
    one = calibrate(Mechanism.GAUSSIAN, 1.0, 1e-6, 1).scale
    four = calibrate(Mechanism.GAUSSIAN, 1.0, 1e-6, 4).scale
    laplace_one = calibrate(Mechanism.LAPLACE, 1.0, 0.0, 1).scale
    laplace_four = calibrate(Mechanism.LAPLACE, 1.0, 0.0, 4).scale
    assert four / one == pytest.approx(2.0, rel=1e-3)
    assert laplace_four / laplace_one == pytest.approx(4.0)


def test_measurement_is_an_opendp_measurement_with_the_right_privacy_measure() -> None:
    laplace = measurement(calibrate(Mechanism.LAPLACE, 1.0, 0.0, 3))
    gaussian = measurement(calibrate(Mechanism.GAUSSIAN, 1.0, 1e-6, 3))
    assert "MaxDivergence" in str(laplace.output_measure)
    assert "Approximate" in str(gaussian.output_measure)


@pytest.mark.parametrize(
    ("mechanism", "epsilon", "delta", "bound", "message"),
    [
        (Mechanism.LAPLACE, 0.0, 0.0, 1, "epsilon must be"),
        (Mechanism.LAPLACE, -1.0, 0.0, 1, "epsilon must be"),
        (Mechanism.LAPLACE, math.inf, 0.0, 1, "epsilon must be"),
        (Mechanism.LAPLACE, math.nan, 0.0, 1, "epsilon must be"),
        (Mechanism.GAUSSIAN, 1.0, 1.0, 1, "delta must be in"),
        (Mechanism.GAUSSIAN, 1.0, -0.1, 1, "delta must be in"),
        (Mechanism.GAUSSIAN, 1.0, 0.0, 1, "Gaussian mechanism needs delta > 0"),
        (Mechanism.LAPLACE, 1.0, 1e-6, 1, "delta must be 0"),
        (Mechanism.LAPLACE, 1.0, 0.0, 0, "at least 1"),
    ],
)
def test_invalid_privacy_parameters(
    mechanism: Mechanism, epsilon: float, delta: float, bound: int, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        calibrate(mechanism, epsilon, delta, bound)


def test_release_rejects_negative_counts_and_accepts_empty() -> None:
    cal = calibrate(Mechanism.LAPLACE, 1.0, 0.0, 1)
    assert release_counts([], cal) == []
    with pytest.raises(InvalidArgument, match="non-negative"):
        release_counts([3, -1], cal)


def test_contribution_bounding_keeps_each_users_most_recent_distinct_keys() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    day = timedelta(days=1)
    events = [
        ("u1", "a", t),
        ("u1", "b", t + day),
        ("u1", "a", t + 3 * day),  # a again, now the most recent
        ("u1", "c", t + 2 * day),
        ("u2", "a", t),
        ("u2", "a", t + day),  # repeats count once
        ("u3", "zzz", t),  # keys outside the public domain are ignored
    ]
    assert contribution_bounded_counts(events, ["a", "b", "c"], 2) == [2, 0, 1]
    assert contribution_bounded_counts(events, ["a", "b", "c"], 3) == [2, 1, 1]
    with pytest.raises(ValueError, match="at least 1"):
        contribution_bounded_counts(events, ["a"], 0)


def test_noisy_top_k_scale_is_the_smallest_that_meets_epsilon() -> None:
    # m selections at monotonic sensitivity 1 cost m / scale: scale = m / epsilon.
    assert noisy_top_k_scale(1.0, 10) == pytest.approx(10.0, rel=1e-6)
    assert noisy_top_k_scale(0.5, 10) == pytest.approx(20.0, rel=1e-6)
    with pytest.raises(InvalidArgument, match="epsilon"):
        noisy_top_k_scale(0.0, 10)
    with pytest.raises(InvalidArgument, match="m must"):
        noisy_top_k_scale(1.0, 0)


def test_noisy_top_k_selects_distinct_keys_and_is_noised() -> None:
    counts = [0] * 200 + [1000 - 10 * i for i in range(10)]
    clear = noisy_top_k(counts, 1e-3, 10)  # negligible noise: the true top 10, best first
    assert clear == list(range(200, 210))
    # At a scale far above the count gaps the selection is mostly noise: different draws
    # differ (a deterministic selection would fail this with certainty).
    draws = [tuple(noisy_top_k(counts, 1e4, 10)) for _ in range(20)]
    assert all(len(set(d)) == 10 for d in draws)
    assert len(set(draws)) > 1
    assert noisy_top_k([3, 1], 1.0, 10) in ([0, 1], [1, 0])
    assert noisy_top_k([], 1.0, 10) == []
    with pytest.raises(InvalidArgument, match="non-negative"):
        noisy_top_k([3, -1], 1.0, 1)
