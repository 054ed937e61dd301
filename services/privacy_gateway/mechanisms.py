"""Differentially private releases of count vectors with OpenDP.

Each user contributes to at most ``max_contributions`` keys, once each (contribution bounding
happens where the events live: the feature store's GetContributionBoundedCounts, or
``contribution_bounded_counts`` below for offline evaluation). Adding or removing one user then
changes the count vector by at most ``max_contributions`` in L1 norm and
``sqrt(max_contributions)`` in L2 norm, the sensitivities the mechanisms are calibrated to.

- Discrete Laplace (Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for Differential
  Privacy", and Ghosh, Roughgarden & Sundararajan 2009 for the geometric mechanism): pure
  epsilon-DP with scale = L1 / epsilon.
- Discrete Gaussian (Canonne, Kamath & Steinke 2020): rho-zCDP with rho = L2^2 / (2 scale^2),
  converted to (epsilon, delta)-DP by OpenDP's zCDP -> approximate-DP conversion; the scale is
  the smallest that meets (epsilon, delta), found by OpenDP's binary search.

Noise comes from OpenDP's own cryptographically secure sampler; it cannot be seeded, by design,
so tests check the distribution statistically instead of comparing fixed draws.

``noisy_top_k`` is the alternative for a release that only needs the m most popular keys:
OpenDP's noisy top-k (one-shot Gumbel noise, equivalent to m rounds of the exponential
mechanism, Durfee & Rogers 2019, "Practical Differentially Private Top-k Selection with
Pay-what-you-get Composition"; McKenna & Sheldon 2020). Distinct-user counts change by at most 1
per key when one user is added or removed, in one direction only (monotonic), whatever the
contribution bound, so the selection needs no bound; it releases ranks, not counts.

The key domain (catalog item ids, category names) is public and released in full, zeros
included, so the set of keys reveals nothing; only the counts are private.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

import opendp.prelude as dp

from shared.errors import InvalidArgument

dp.enable_features("contrib")

K = TypeVar("K", bound=Hashable)


class Mechanism(StrEnum):
    LAPLACE = "laplace"
    GAUSSIAN = "gaussian"


@dataclass(frozen=True)
class Calibration:
    """A mechanism calibrated to a privacy target; ``scale`` is the noise scale parameter
    (the Laplace ``b``, the Gaussian standard deviation ``sigma``)."""

    mechanism: Mechanism
    epsilon: float
    delta: float
    max_contributions: int
    sensitivity: float
    scale: float


def validate_privacy_parameters(
    mechanism: Mechanism, epsilon: float, delta: float, max_contributions: int
) -> None:
    """Raise InvalidArgument with a message naming the bad parameter."""
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise InvalidArgument("epsilon must be a finite number greater than 0")
    if not math.isfinite(delta) or not 0 <= delta < 1:
        raise InvalidArgument("delta must be in [0, 1)")
    if mechanism is Mechanism.GAUSSIAN and delta <= 0:
        raise InvalidArgument("the Gaussian mechanism needs delta > 0")
    if mechanism is Mechanism.LAPLACE and delta != 0:
        raise InvalidArgument("the Laplace mechanism is pure epsilon-DP: delta must be 0")
    if max_contributions < 1:
        raise InvalidArgument("max_contributions_per_user must be at least 1")


def _laplace(scale: float) -> dp.Measurement:
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    return dp.m.make_laplace(domain, dp.l1_distance(T="i64"), scale=scale)


def _gaussian(scale: float, delta: float) -> dp.Measurement:
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    # A real-valued L2 metric over integer vectors: the sensitivity sqrt(k) need not be integral.
    zcdp = dp.m.make_gaussian(domain, dp.l2_distance(T="f64"), scale=scale)
    return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(zcdp), delta)


def calibrate(
    mechanism: Mechanism, epsilon: float, delta: float, max_contributions: int
) -> Calibration:
    """The smallest noise scale whose OpenDP privacy map meets (epsilon, delta)."""
    validate_privacy_parameters(mechanism, epsilon, delta, max_contributions)
    if mechanism is Mechanism.LAPLACE:
        sensitivity: float = max_contributions
        scale = dp.binary_search_param(_laplace, d_in=max_contributions, d_out=epsilon)
    else:
        sensitivity = math.sqrt(max_contributions)
        scale = dp.binary_search_param(
            lambda s: _gaussian(s, delta), d_in=sensitivity, d_out=(epsilon, delta)
        )
    return Calibration(mechanism, epsilon, delta, max_contributions, sensitivity, float(scale))


def measurement(calibration: Calibration) -> dp.Measurement:
    """The OpenDP measurement of a calibration (its privacy map can be inspected)."""
    if calibration.mechanism is Mechanism.LAPLACE:
        return _laplace(calibration.scale)
    return _gaussian(calibration.scale, calibration.delta)


def privacy_spent(calibration: Calibration) -> tuple[float, float]:
    """(epsilon, delta) the measurement's own privacy map certifies for the sensitivity."""
    d_in: float | int = (
        calibration.max_contributions
        if calibration.mechanism is Mechanism.LAPLACE
        else calibration.sensitivity
    )
    out = measurement(calibration).map(d_in)
    if calibration.mechanism is Mechanism.LAPLACE:
        return float(out), 0.0
    return float(out[0]), float(out[1])


def release_counts(counts: Sequence[int], calibration: Calibration) -> list[int]:
    """Noisy counts, one per input count, from the calibrated OpenDP measurement."""
    if not counts:
        return []
    if any(c < 0 for c in counts):
        raise InvalidArgument("counts must be non-negative integers")
    return [int(x) for x in measurement(calibration)([int(c) for c in counts])]


def noisy_top_k_scale(epsilon: float, m: int) -> float:
    """The smallest Gumbel scale whose OpenDP privacy map gives epsilon-DP for selecting ``m``
    keys from distinct-user counts (monotonic L-infinity sensitivity 1)."""
    validate_privacy_parameters(Mechanism.LAPLACE, epsilon, 0.0, 1)
    if m < 1:
        raise InvalidArgument("m must be at least 1")
    return float(dp.binary_search_param(lambda s: _top_k(m, s), d_in=1, d_out=epsilon))


def _top_k(m: int, scale: float) -> dp.Measurement:
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    metric = dp.linf_distance(T="i64", monotonic=True)
    return dp.m.make_noisy_top_k(domain, metric, dp.max_divergence(), k=m, scale=scale)


def noisy_top_k(counts: Sequence[int], scale: float, m: int) -> list[int]:
    """Indices of ``m`` keys chosen by OpenDP's noisy top-k at ``scale``, best first."""
    if any(c < 0 for c in counts):
        raise InvalidArgument("counts must be non-negative integers")
    m = min(m, len(counts))
    if m == 0:
        return []
    return [int(i) for i in _top_k(m, scale)([int(c) for c in counts])]


def contribution_bounded_counts(
    events: Iterable[tuple[Hashable, K, datetime]],
    keys: Sequence[K],
    max_contributions: int,
) -> list[int]:
    """Distinct (user, key) counts over ``keys`` where each user keeps only their
    ``max_contributions`` most recently touched keys; the offline twin of the feature store's
    GetContributionBoundedCounts, used by the evaluation scripts."""
    if max_contributions < 1:
        raise ValueError("max_contributions must be at least 1")
    last_seen: dict[Hashable, dict[K, datetime]] = defaultdict(dict)
    for user, key, when in events:
        seen = last_seen[user]
        if key not in seen or when > seen[key]:
            seen[key] = when
    index = {k: i for i, k in enumerate(keys)}
    counts = [0] * len(keys)
    for seen in last_seen.values():
        recent = sorted(seen.items(), key=lambda kv: kv[1], reverse=True)[:max_contributions]
        for key, _ in recent:
            if key in index:
                counts[index[key]] += 1
    return counts
