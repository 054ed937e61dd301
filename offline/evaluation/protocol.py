"""The evaluation protocol: a test period read once, a validation cut for every choice.

    time --------------------------------------------------------------------------->
    |<------------------------ train (80%) ------------------------>|<-- test (20%) -->|
    |<------------- fit (80% of train) ------------->|<- validation ->|

- ``temporal_split(data, 0.8)`` (shared.data) cuts the log at its 80% time quantile: train
  strictly before, test at or after.
- :func:`validation_cut` cuts the TRAIN log the same way (the same rule, on the training
  interactions only): models fit on the early part and are scored on the late part. Every
  choice (peer hyperparameters, blend weight, trade-off, the best baseline) is made there.
- The chosen configuration is refitted on the whole train period and scored on test once.

In both cuts a shopper is eligible when they have history before the cut and at least one
item after it; the truth is the set of items they interacted with after it (repeats count).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from offline.retrieval.evaluation import holdout_truth
from shared import metrics
from shared.data import temporal_split
from shared.data.types import Dataset, Interaction

TRAIN_FRACTION = 0.8
"""Share of the log (by time quantile) before the test cut."""

VALIDATION_FRACTION = 0.8
"""Share of the TRAIN log (by time quantile) before the validation cut."""

VALIDATION_WINDOW = 1.0 - VALIDATION_FRACTION
"""The validation cut's window: the share of the TRAIN log after it (earlier cuts use it too)."""


@dataclass(frozen=True)
class Cut:
    """One side of a time cut as an evaluation sees it.

    ``before`` is what models may fit on; ``histories`` the eligible shoppers' items before the
    cut, most recent first; ``truth`` their items after it.
    """

    before: list[Interaction]
    after: list[Interaction]
    histories: dict[str, list[str]]
    truth: dict[str, set[str]]

    @property
    def users(self) -> list[str]:
        """The eligible shoppers, sorted."""
        return sorted(self.truth)


def cut(interactions: Sequence[Interaction], fraction: float, name: str = "log") -> Cut:
    """Cut a log at its ``fraction`` time quantile with ``temporal_split``'s rule."""
    before, after = temporal_split(Dataset(name, {}, list(interactions)), fraction)
    histories, truth = holdout_truth(before, after)
    return Cut(before, after, histories, truth)


def holdout_cut(data: Dataset, fraction: float = TRAIN_FRACTION) -> Cut:
    """The train/test split of ``data``."""
    return cut(data.interactions, fraction, data.name)


def validation_cut(train: Sequence[Interaction], fraction: float = VALIDATION_FRACTION) -> Cut:
    """Train-on-early, validate-on-late inside the training period only."""
    if not train:
        raise ValueError("the training period is empty: nothing to validate on")
    return cut(train, fraction, "train")


def window_cut(
    train: Sequence[Interaction], quantile: float, window: float = VALIDATION_WINDOW
) -> Cut:
    """A cut inside the training period at its ``quantile`` (event quantile, as
    ``temporal_split``): models fit before it, and the truth is what each shopper interacted
    with in the next ``window`` of the log only, so an earlier cut asks as much of a model as
    :func:`validation_cut` (whose window runs to the end of training) does."""
    if not 0.0 < quantile < 1.0 or window <= 0.0:
        raise ValueError("the quantile must be in (0, 1) and the window > 0")
    ordered = sorted(train, key=lambda x: x.timestamp)
    if not ordered:
        raise ValueError("the training period is empty: nothing to validate on")
    start = ordered[int(len(ordered) * quantile)].timestamp
    end_at = int(len(ordered) * (quantile + window))
    end = ordered[end_at].timestamp if end_at < len(ordered) else None
    before = [x for x in ordered if x.timestamp < start]
    after = [x for x in ordered if x.timestamp >= start and (end is None or x.timestamp < end)]
    histories, truth = holdout_truth(before, after)
    return Cut(before, after, histories, truth)


def sample(users: Sequence[str], limit: int, seed: int) -> list[str]:
    """All ``users`` (sorted) when ``limit`` is 0 or covers them, else a seeded sample."""
    ordered = sorted(users)
    if limit <= 0 or limit >= len(ordered):
        return ordered
    shuffled = list(ordered)
    random.Random(seed).shuffle(shuffled)
    return sorted(shuffled[:limit])


def per_user(
    lists: Mapping[str, Sequence[str]],
    truth: Mapping[str, set[str]],
    users: Sequence[str],
    k: int = 10,
    fn: Callable[[Sequence[str], set[str], int], float] = metrics.ndcg_at_k,
) -> np.ndarray:
    """``fn@k`` per shopper, in ``users`` order (a shopper without a list scores as empty)."""
    return np.asarray([fn(lists.get(u, []), truth[u], k) for u in users], dtype=np.float64)
