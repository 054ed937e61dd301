"""The feature store's domain values, shared by its query, ingest and admin roles.

No gRPC here: the servicer converts messages to these dataclasses. Validation errors raise
``shared.errors.InvalidArgument`` with a message that names the offending field
(``events[3].item_id is empty``); messages never echo user ids.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.errors import InvalidArgument


@dataclass(frozen=True)
class Item:
    """Catalog attributes of one item plus its released DP popularity.

    ``available``: False withdraws the item from every answer (out of stock, retired). Read
    from the store it is always a bool; in a catalog load None means available for a new
    item and unchanged for an existing one.
    """

    item_id: str
    title: str
    category_path: tuple[str, ...]
    price: float
    embedding_version: str = ""
    dp_popularity: float = 0.0
    available: bool | None = None


@dataclass(frozen=True)
class Event:
    """One interaction keyed by a pseudonymous user id; ``timestamp`` must be time-zone aware."""

    event_id: str
    user_id: str
    item_id: str
    event_type: str
    timestamp: datetime | None
    quantity: int = 1
    # Attribution: the list the shopper acted from ("" for none) and the 1-based position
    # in it (0 for none; a position needs a recommendation id).
    recommendation_id: str = ""
    position: int = 0


@dataclass(frozen=True)
class ServedList:
    """One answered Recommend call: its id, when, how it was ordered, how many items it
    showed, and the (experiment, variant) pairs of the shopper. No user id, no item ids."""

    recommendation_id: str
    served_at: datetime | None
    method: str
    item_count: int
    assignments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ItemInteraction:
    """One user's own events on one item, as the derived user_items table holds them."""

    item_id: str
    event_count: int
    purchased_quantity: int
    last_event_time: datetime


@dataclass(frozen=True)
class UserFeatures:
    """Derived features of one user; ``known`` is False for a user without events."""

    user_id: str
    known: bool
    recent_item_ids: list[str] = field(default_factory=list)
    category_affinities: list[tuple[str, float]] = field(default_factory=list)
    event_count: int = 0
    purchase_count: int = 0
    last_event_time: datetime | None = None
    purchased_item_ids: list[str] = field(default_factory=list)
    # The recent items' interactions, in recent_item_ids order.
    item_interactions: list[ItemInteraction] = field(default_factory=list)


@dataclass(frozen=True)
class ItemLookup:
    """Items found, in request order, and the requested ids not in the catalog."""

    items: list[Item]
    missing_item_ids: list[str]


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class CatalogLoadResult:
    inserted: int
    updated: int


@dataclass(frozen=True)
class AvailabilityResult:
    """Items whose availability was written and the requested ids not in the catalog."""

    updated: int
    missing_item_ids: list[str]


@dataclass(frozen=True)
class PopularItems:
    """Items by decreasing DP popularity and the release their popularity comes from."""

    items: list[Item]
    release_id: str
    # When the store applied that release; None before the first release.
    release_time: dt.datetime | None = None


@dataclass(frozen=True)
class SeedResult:
    items_inserted: int
    items_updated: int
    events_accepted: int
    events_duplicate: int
    users: int


class AggregateKind(enum.Enum):
    """Aggregates the privacy gateway may release with differential privacy."""

    ITEM_POPULARITY = "item_popularity"
    CATEGORY_TREND = "category_trend"


def check_id(value: str, name: str, limit: int) -> None:
    """An identifier must be present and fit its column."""
    if not value:
        raise InvalidArgument(f"{name} is empty")
    if len(value) > limit:
        raise InvalidArgument(f"{name} is longer than {limit} characters")


def utcnow() -> datetime:
    """The default clock of the roles; tests pass their own."""
    return datetime.now(UTC)
