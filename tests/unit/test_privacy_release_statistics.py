"""A DP release is noised and calibrated: many releases of fixed counts through the gateway's
ReleaseAggregates, their noise tested against the configured mechanism's distribution.

The release path under test is the servicer's own (validation, ledger charge, calibration,
OpenDP noise, write-back); the feature store is replaced by fixed counts so the exact values
are known. OpenDP's sampler cannot be seeded, so the checks are statistical with a false
alarm rate of 1e-6: a Kolmogorov-Smirnov distance against the discrete distribution's CDF,
bounded by the Dvoretzky-Kiefer-Wolfowitz inequality (Massart 1990), which stays valid
(conservative) for discrete distributions, plus mean, scale and tail checks. The same checks
reject a release that returns the exact counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.ledger import Ledger, create_ledger_engine
from services.privacy_gateway.mechanisms import Mechanism, calibrate
from services.privacy_gateway.pii import PiiPolicy, PiiSanitizer
from services.privacy_gateway.servicer import PrivacyGatewayServicer
from shared.deadline import Budget
from shared.event_window import EventWindow
from shared.gen.acme.recsys.v1 import feature_store_pb2, privacy_gateway_pb2
from shared.keyring import KeyRing

RELEASES = 60
KEYS = [f"item-{i:03d}" for i in range(300)]
# Fixed exact counts, zeros included (a catalog item nobody touched is released too).
EXACT = [(7 * i) % 23 for i in range(len(KEYS))]
ALPHA = 1e-6


class FixedCounts:
    """The feature store's two privileged methods over fixed counts; writes are recorded."""

    def __init__(self, counts: Sequence[int]) -> None:
        self.pairs = [(k, float(c)) for k, c in zip(KEYS, counts, strict=True)]
        self.written: list[tuple[str, list[tuple[str, float]]]] = []
        self.bounds: list[int] = []
        self.windows: list[EventWindow | None] = []

    async def contribution_bounded_counts(
        self,
        kind: feature_store_pb2.AggregateKind,
        max_contributions: int,
        budget: Budget,
        window: EventWindow | None = None,
    ) -> list[tuple[str, float]]:
        self.bounds.append(max_contributions)
        self.windows.append(window)
        return list(self.pairs)

    async def set_item_popularity(
        self, release_id: str, popularities: list[tuple[str, float]], budget: Budget
    ) -> int:
        self.written.append((release_id, list(popularities)))
        return len(popularities)


class Context:
    """What ReleaseAggregates reads of its context: the caller's remaining time and who it is
    (a loopback caller without a certificate, admitted by dev_allow_loopback_privileged)."""

    def time_remaining(self) -> float:
        return 30.0

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}


def discrete_laplace_cdf(x: np.ndarray, scale: float) -> np.ndarray:
    """CDF of P(x) ~ exp(-|x| / scale) on the integers."""
    q = math.exp(-1.0 / scale)
    return np.where(x >= 0, 1.0 - q ** (np.abs(x) + 1) / (1 + q), q ** np.abs(x) / (1 + q))


def discrete_gaussian_cdf(x: np.ndarray, sigma: float) -> np.ndarray:
    """CDF of P(x) ~ exp(-x^2 / (2 sigma^2)) on the integers, summed to 40 sigma."""
    support = np.arange(-int(40 * sigma) - 1, int(40 * sigma) + 2)
    pmf = np.exp(-(support.astype(np.float64) ** 2) / (2 * sigma**2))
    cdf = np.cumsum(pmf / pmf.sum())
    return np.interp(x, support, cdf, left=0.0, right=1.0)


def calibrated(noise: np.ndarray, cdf: np.ndarray, grid: np.ndarray, sd: float) -> list[str]:
    """The failed checks (empty when ``noise`` follows the distribution with ``cdf``)."""
    n = len(noise)
    failed = []
    empirical = np.searchsorted(np.sort(noise), grid, side="right") / n
    distance = float(np.max(np.abs(empirical - cdf)))
    dkw = math.sqrt(math.log(2 / ALPHA) / (2 * n))
    if distance > dkw:
        failed.append(f"KS distance {distance:.4f} > {dkw:.4f}")
    if abs(noise.mean()) > 5 * sd / math.sqrt(n):
        failed.append(f"mean {noise.mean():.3f} is not 0")
    # Tail: P(|X| > 2 sd) from the CDF, against a 5-standard-error band.
    t = math.floor(2 * sd)
    p = float(1 - cdf[grid == t][0] + cdf[grid == -t - 1][0])
    observed = float(np.mean(np.abs(noise) > t))
    if abs(observed - p) > 5 * math.sqrt(p * (1 - p) / n):
        failed.append(f"tail P(|X|>{t}) {observed:.4f}, want {p:.4f}")
    return failed


async def _release_many(
    tmp_path: Path, mechanism: Mechanism, epsilon: float, delta: float, bound: int
) -> tuple[np.ndarray, FixedCounts]:
    settings = PrivacyGatewaySettings(
        epsilon_budget=RELEASES * epsilon,
        delta_budget=min(0.5, RELEASES * delta * 1.01),
        database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        dev_allow_loopback_privileged=True,
    )  # type: ignore[call-arg]
    ledger = Ledger(
        create_ledger_engine(settings.database_url),
        epsilon_total=settings.epsilon_budget,
        delta_total=settings.delta_budget,
    )
    ledger.create_schema()
    counts = FixedCounts(EXACT)
    ring = KeyRing.generate()
    with ThreadPoolExecutor(2) as executor:
        servicer = PrivacyGatewayServicer(
            settings, lambda: ring, PiiSanitizer(PiiPolicy()), ledger, counts, executor
        )
        mech = {
            Mechanism.LAPLACE: privacy_gateway_pb2.NOISE_MECHANISM_LAPLACE,
            Mechanism.GAUSSIAN: privacy_gateway_pb2.NOISE_MECHANISM_GAUSSIAN,
        }[mechanism]
        request = privacy_gateway_pb2.ReleaseAggregatesRequest(
            kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY,
            epsilon=epsilon,
            delta=delta,
            mechanism=mech,
            max_contributions_per_user=bound,
            purpose="calibration test",
        )
        noise = []
        for _ in range(RELEASES):
            reply = await servicer.ReleaseAggregates(request, Context())  # type: ignore[arg-type]
            released = [c.count for c in reply.counts]
            noise.append(np.asarray(released) - np.asarray(EXACT))
    ledger.close()
    return np.concatenate(noise), counts


@pytest.mark.parametrize(
    ("mechanism", "epsilon", "delta", "bound"),
    [
        (Mechanism.LAPLACE, 1.0, 0.0, 5),
        (Mechanism.GAUSSIAN, 1.0, 1e-6, 4),
        # 0 = the gateway's default for item popularity, the bound chosen on validation.
        (Mechanism.LAPLACE, 1.0, 0.0, 0),
    ],
)
async def test_releases_of_fixed_counts_follow_the_calibrated_mechanism(
    tmp_path: Path, mechanism: Mechanism, epsilon: float, delta: float, bound: int
) -> None:
    noise, counts = await _release_many(tmp_path, mechanism, epsilon, delta, bound)
    used = bound or PrivacyGatewaySettings().item_popularity_max_contributions
    # The store was asked for counts at the bound the noise is calibrated to.
    assert set(counts.bounds) == {used}
    cal = calibrate(mechanism, epsilon, delta, used)
    grid = np.arange(-int(30 * cal.scale) - 1, int(30 * cal.scale) + 2)
    if mechanism is Mechanism.LAPLACE:
        cdf = discrete_laplace_cdf(grid, cal.scale)
        q = math.exp(-1.0 / cal.scale)
        sd = math.sqrt(2 * q) / (1 - q)
    else:
        cdf = discrete_gaussian_cdf(grid, cal.scale)
        sd = cal.scale
    assert calibrated(noise, cdf, grid, sd) == []
    # Every release was written back under its own id, and drew its own noise.
    assert len({rid for rid, _ in counts.written}) == RELEASES
    per_release = noise.reshape(RELEASES, len(KEYS))
    assert len({row.tobytes() for row in per_release}) == RELEASES
    # The same checks catch a release of the exact counts, and one at a tenth of the scale.
    assert calibrated(np.zeros_like(noise), cdf, grid, sd)
    assert calibrated(np.round(noise / 10), cdf, grid, sd)
