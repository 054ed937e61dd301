"""The paired bootstrap of offline.evaluation.stats on synthetic data with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from offline.evaluation.stats import bootstrap_means, paired_bootstrap


def _pair(n: int, effect: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two methods' per-shopper scores sharing a large per-shopper component (as NDCG does:
    some shoppers are easy for every method) and differing by ``effect`` on average."""
    rng = np.random.default_rng(seed)
    shopper = rng.exponential(0.1, n)
    b = shopper + rng.normal(0.0, 0.02, n)
    a = shopper + effect + rng.normal(0.0, 0.02, n)
    return a, b


def test_a_big_effect_is_covered_and_excludes_zero() -> None:
    a, b = _pair(1000, 0.01, seed=1)
    diff = paired_bootstrap(a, b, seed=0)
    assert diff.low < 0.01 < diff.high
    assert diff.low > 0.0
    assert diff.excludes_zero()
    assert diff.mean == pytest.approx(float(np.mean(a - b)))
    # The reverse comparison is the mirror image.
    back = paired_bootstrap(b, a, seed=0)
    assert back.high < 0.0
    assert back.mean == pytest.approx(-diff.mean)


def test_identical_methods_give_a_zero_interval_and_no_effect_contains_zero() -> None:
    a, _ = _pair(500, 0.0, seed=2)
    same = paired_bootstrap(a, a.copy())
    assert (same.low, same.mean, same.high) == (0.0, 0.0, 0.0)
    assert not same.excludes_zero()
    a, b = _pair(500, 0.0, seed=3)
    null = paired_bootstrap(a, b)
    assert null.low < 0.0 < null.high


def test_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    effect = 0.003
    covered = 0
    trials = 120
    for t in range(trials):
        a, b = _pair(300, effect, seed=100 + t)
        diff = paired_bootstrap(a, b, resamples=400, seed=t)
        covered += diff.low <= effect <= diff.high
    # Binomial(120, 0.95): 108..120 holds with probability > 0.99; a broken interval (too
    # narrow, unpaired, off-centre) falls far outside.
    assert 108 <= covered <= 120, covered


def test_pairing_is_what_makes_the_interval_narrow() -> None:
    a, b = _pair(800, 0.005, seed=4)
    paired = paired_bootstrap(a, b, seed=0)
    # Resampling the two methods independently ignores the shared per-shopper component.
    unpaired_a = bootstrap_means(a, seed=1)
    unpaired_b = bootstrap_means(b, seed=2)
    lo, hi = np.quantile(unpaired_a - unpaired_b, [0.025, 0.975])
    assert (paired.high - paired.low) * 3 < hi - lo
    assert paired.excludes_zero()
    assert lo < 0.0 < hi


def test_seeded_and_chunked_resampling_is_reproducible() -> None:
    a, b = _pair(50, 0.01, seed=5)
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    assert paired_bootstrap(a, b, seed=7) != paired_bootstrap(a, b, seed=8)
    means = bootstrap_means(np.arange(10.0), resamples=3000, seed=0)
    assert means.shape == (3000,)
    assert 4.0 < means.mean() < 5.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="equal shapes"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(np.zeros(3), np.zeros(3), confidence=1.0)
