"""Dataset types shared by the loaders, the trainers and the evaluation."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

EVENT_VIEW = "view"
EVENT_ADD_TO_CART = "add_to_cart"
EVENT_PURCHASE = "purchase"
EVENT_RATING = "rating"
EVENT_TYPES = (EVENT_VIEW, EVENT_ADD_TO_CART, EVENT_PURCHASE, EVENT_RATING)


@dataclass(frozen=True)
class CatalogItem:
    """One product: id, title, category path from the root, unit price; whether it can be
    sold now, when the catalog first listed it (None: unknown) and free text."""

    item_id: str
    title: str
    category_path: tuple[str, ...]
    price: float
    available: bool = True
    first_seen: datetime | None = None
    description: str = ""

    @property
    def top_category(self) -> str:
        return self.category_path[0] if self.category_path else ""

    @property
    def leaf_category(self) -> str:
        return self.category_path[-1] if self.category_path else ""


@dataclass(frozen=True)
class Interaction:
    """One user-item event. ``user_id`` is whatever the source calls the user; it is
    pseudonymized by the privacy gateway before it reaches any service."""

    user_id: str
    item_id: str
    timestamp: datetime
    event_type: str = EVENT_PURCHASE
    quantity: int = 1
    value: float | None = None


@dataclass
class Dataset:
    """A catalog and an interaction log, interactions sorted by time."""

    name: str
    items: dict[str, CatalogItem]
    interactions: list[Interaction]
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.interactions.sort(key=lambda x: (x.timestamp, x.user_id, x.item_id))

    def users(self) -> list[str]:
        return sorted({x.user_id for x in self.interactions})

    def histories(self) -> dict[str, list[Interaction]]:
        """Interactions per user, oldest first."""
        out: dict[str, list[Interaction]] = defaultdict(list)
        for x in self.interactions:
            out[x.user_id].append(x)
        return dict(out)


def time_cut(dataset: Dataset, train_fraction: float = 0.8) -> datetime:
    """The ``train_fraction`` time quantile of the log: the cut of ``temporal_split``."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError("train_fraction must be in (0, 1)")
    if not dataset.interactions:
        raise ValueError(f"dataset {dataset.name!r} has no interactions")
    return dataset.interactions[int(len(dataset.interactions) * train_fraction)].timestamp


def split_log(
    interactions: Sequence[Interaction], fraction: float = 0.8
) -> tuple[list[Interaction], list[Interaction]]:
    """``temporal_split``'s rule on a plain list (a training period, say): the events sorted
    by time (stably), cut at their ``fraction`` time quantile, (strictly before, at or after).
    Every validation cut inside a training period uses it, so they all agree."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("the cut fraction must be in (0, 1)")
    if not interactions:
        raise ValueError("the log is empty: nothing to cut")
    ordered = sorted(interactions, key=lambda x: x.timestamp)
    cut = ordered[int(len(ordered) * fraction)].timestamp
    return [x for x in ordered if x.timestamp < cut], [x for x in ordered if x.timestamp >= cut]


def temporal_split(
    dataset: Dataset, train_fraction: float = 0.8
) -> tuple[list[Interaction], list[Interaction]]:
    """Split at the ``train_fraction`` time quantile: train strictly before the cut time,
    test at or after it. A global time cut avoids leaking future interactions into training."""
    cut = time_cut(dataset, train_fraction)
    train = [x for x in dataset.interactions if x.timestamp < cut]
    test = [x for x in dataset.interactions if x.timestamp >= cut]
    return train, test


CATALOGS = ("cut", "full")


def catalog_at(dataset: Dataset, cut: datetime) -> dict[str, CatalogItem]:
    """The catalog as known at ``cut``: items listed (``first_seen``) or first interacted with
    before it. An item that only appears after the cut could not have been recommended then."""
    seen = {x.item_id for x in dataset.interactions if x.timestamp < cut}
    return {
        i: it
        for i, it in dataset.items.items()
        if i in seen or (it.first_seen is not None and _aware(it.first_seen) < _aware(cut))
    }


def evaluation_catalog(
    dataset: Dataset, which: str, train_fraction: float = 0.8
) -> tuple[dict[str, CatalogItem], str]:
    """The catalog an offline evaluation ranks, and the sentence its protocol states:
    ``cut`` (the default) = ``catalog_at`` the split's cut, ``full`` = every item of the file."""
    if which not in CATALOGS:
        raise ValueError(f"catalog must be one of {CATALOGS}")
    if which == "full":
        return (
            dataset.items,
            f"full catalog ({len(dataset.items)} items, including ones first seen after the cut)",
        )
    cut = time_cut(dataset, train_fraction)
    known = catalog_at(dataset, cut)
    return known, (
        f"catalog known at the cut ({len(known)} of {len(dataset.items)} items listed or "
        f"interacted with before {cut:%Y-%m-%d %H:%M})"
    )


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def shared_data_dir() -> Path:
    """Folder of the read-only real datasets: ``RECSYS_DATA_DIR`` or ``../shared/data``
    beside the repository."""
    env = os.environ.get("RECSYS_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"
