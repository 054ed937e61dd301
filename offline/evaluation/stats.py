"""Paired bootstrap confidence intervals for differences between two methods.

Both methods are scored on the SAME shoppers (one value per shopper, e.g. NDCG@10), so the
shopper is the unit of resampling: each resample draws n shoppers with replacement and takes
the mean of ``a - b`` over them. The interval is the percentile interval of those means
(Efron & Tibshirani, An Introduction to the Bootstrap, ch. 13). Pairing removes the
between-shopper variance that both methods share, which is most of it: an unpaired interval
would be several times wider.

Seeded and vectorised (numpy): 1,000 resamples over 1,000 shoppers take milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Index matrices are drawn in chunks of at most this many entries (about 40 MB of int64).
_CHUNK_ENTRIES = 5_000_000


@dataclass(frozen=True)
class Difference:
    """Mean of ``a - b`` over the shoppers and its bootstrap interval at ``confidence``."""

    mean: float
    low: float
    high: float
    confidence: float
    resamples: int
    n: int

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0."""
        return self.low > 0.0 or self.high < 0.0


def bootstrap_means(values: np.ndarray, *, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples (with replacement, size n) of ``values``."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("values must be a non-empty 1-d array")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    n = len(x)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples, dtype=np.float64)
    step = max(1, _CHUNK_ENTRIES // n)
    for start in range(0, resamples, step):
        size = min(step, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        out[start : start + size] = x[idx].mean(axis=1)
    return out


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Difference:
    """Mean of ``a - b`` with its paired percentile bootstrap interval.

    ``a[i]`` and ``b[i]`` are the two methods' values for the same shopper i. The same seed
    gives the same interval, and the same resampled shoppers for every pair of methods
    compared over the same shoppers.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values need equal shapes, got {x.shape} and {y.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    d = x - y
    means = bootstrap_means(d, resamples=resamples, seed=seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Difference(
        mean=float(d.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=resamples,
        n=len(d),
    )
