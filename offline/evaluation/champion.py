"""What every publish gate shares: may a retrained model (the challenger) replace the one
``LATEST`` names (the champion)?

Each trainer scores both on the challenger's own held-out shoppers (the same lists, truth and
metric) and hands the two per-shopper arrays to ``compare``: the challenger is refused when the
paired bootstrap 95% interval of its value minus the champion's lies entirely below 0. A tie
passes: two seeds of one recipe differ by a few percent, and a retrain on a newer log is the
point of retraining.

The champion can only be scored on shoppers whose period it was not trained on.
``why_not_comparable`` says why it cannot be (another dataset, no recorded training end, a
training end inside the held-out period); the gate then passes without a comparison and records
why. Used by offline.retrieval.gate (retrieval), offline.ranker.gate (the cross-encoder).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np

from offline.evaluation.stats import Difference, paired_bootstrap

GATE_RESAMPLES = 1000


@dataclass(frozen=True)
class GateResult:
    """What a gate decided, and on what; ``record()`` goes into the new version's meta."""

    passed: bool
    reason: str
    champion: str | None = None
    metric: str = ""
    shoppers: int = 0
    challenger_value: float | None = None
    champion_value: float | None = None
    difference: Difference | None = None

    @property
    def compared(self) -> bool:
        return self.difference is not None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "passed": self.passed,
            "compared": self.compared,
            "reason": self.reason,
            "champion": self.champion,
            "metric": self.metric,
            "shoppers": self.shoppers,
            "challenger": self.challenger_value,
            "champion_value": self.champion_value,
        }
        if self.difference is not None:
            out["difference"] = asdict(self.difference)
        return out


def why_not_comparable(
    name: str, champion_meta: Mapping[str, Any], dataset: str | None, held_out_start: datetime
) -> str | None:
    """Why the champion ``name`` (its ``meta.json`` as read) cannot be scored on a held-out
    period of ``dataset`` starting at ``held_out_start``; None when it can."""
    if champion_meta.get("dataset") != dataset:
        return (
            f"the published version {name} was trained on {champion_meta.get('dataset')!r}, "
            f"this one on {dataset!r}: not comparable"
        )
    until = (champion_meta.get("training") or {}).get("until")
    if not until:
        return (
            f"the published version {name} records no training period (written before the "
            "gate existed): it cannot be scored without possibly having trained on the test"
        )
    try:
        trained_into_test = datetime.fromisoformat(until) >= held_out_start
    except (TypeError, ValueError):
        return f"the published version {name} records an unreadable training end {until!r}"
    if trained_into_test:
        return (
            f"the published version {name} was trained on events up to {until}, inside this "
            f"split's test period (from {held_out_start.isoformat()}): scoring it there would "
            "leak"
        )
    return None


def compare(
    challenger: np.ndarray,
    champion: np.ndarray,
    name: str,
    metric: str,
    *,
    resamples: int = GATE_RESAMPLES,
    seed: int = 0,
) -> GateResult:
    """The decision on per-shopper values of ``metric`` (the same shoppers, in one order)."""
    new = np.asarray(challenger, dtype=np.float64)
    old = np.asarray(champion, dtype=np.float64)
    diff = paired_bootstrap(new, old, resamples=resamples, seed=seed)
    worse = diff.high < 0.0
    verdict = (
        "worse than the published version on these shoppers: LATEST stays"
        if worse
        else "not worse than the published version on these shoppers"
    )
    short = metric.split(" ", 1)[0]
    return GateResult(
        not worse,
        f"{short} {float(new.mean()):.4f} against {name}'s {float(old.mean()):.4f}, "
        f"difference {diff.mean:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}] over "
        f"{len(new)} shoppers: {verdict}",
        name,
        metric,
        len(new),
        float(new.mean()),
        float(old.mean()),
        diff,
    )


REFUSED_EXIT = 3
"""A trainer's exit status when its gate kept LATEST where it was."""


def report(decision: Mapping[str, Any], version: str, promote: str) -> int:
    """Print a recorded decision (``GateResult.record()``) as every trainer does: its reason,
    and on a refusal which version is still served and the ``promote`` command that would
    serve ``version`` anyway. Returns the command's exit status (0, or REFUSED_EXIT)."""
    print(f"publish gate: {decision['reason']}")
    if decision["passed"]:
        return 0
    print(
        f"LATEST still names {decision['champion']}; to serve {version} anyway: {promote}",
        file=sys.stderr,
    )
    return REFUSED_EXIT
