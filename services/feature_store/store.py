"""``FeatureStore``: the query, ingest and admin roles over one database, as one object.

The servicer talks to the roles directly. This facade is for callers that want the whole
store behind one handle from a URL: the seed and rekey jobs, the benchmarks and the tests.
Each method is the named role's; only ``seed_dataset`` spans two roles (catalog and events).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from services.feature_store.admin import FeatureAdmin
from services.feature_store.db import Database, create_engine
from services.feature_store.derived import DEFAULT_EVENT_WEIGHTS, DerivedFeatures
from services.feature_store.ingest import EventIngest
from services.feature_store.model import (
    AggregateKind,
    AvailabilityResult,
    CatalogLoadResult,
    Event,
    IngestResult,
    Item,
    ItemLookup,
    PopularItems,
    SeedResult,
    UserFeatures,
    utcnow,
)
from services.feature_store.online_metrics import OnlineMetrics
from services.feature_store.queries import FeatureQueries
from shared.data.types import Dataset
from shared.event_window import EventWindow

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "AggregateKind",
    "CatalogLoadResult",
    "Event",
    "FeatureStore",
    "IngestResult",
    "Item",
    "ItemLookup",
    "PopularItems",
    "SeedResult",
    "UserFeatures",
]


class FeatureStore:
    """``queries``, ``ingest`` and ``admin`` sharing one ``database``.

    Thread-safe like the roles. ``clock`` stamps rows and bounds how far in the future an
    event may claim to be; ``event_weights`` weigh event types in category affinities.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_clock_skew: timedelta = timedelta(hours=1),
        event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
    ) -> None:
        self.database = Database(engine)
        derived = DerivedFeatures(self.database, event_weights)
        self.queries = FeatureQueries(self.database)
        self.ingest = EventIngest(
            self.database, derived, clock=clock, max_clock_skew=max_clock_skew
        )
        self.admin = FeatureAdmin(self.database, derived, clock=clock)
        self.online = OnlineMetrics(self.database, clock=clock)

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 5, **kwargs: Any) -> FeatureStore:
        return cls(create_engine(url, pool_size=pool_size), **kwargs)

    @property
    def engine(self) -> sa.Engine:
        return self.database.engine

    # ---- lifecycle: the database ------------------------------------------------------------

    def migrate(self) -> None:
        self.database.migrate()

    def is_ready(self) -> bool:
        return self.database.is_ready()

    def check_ready(self, *, migrate: bool = False) -> bool:
        return self.database.check_ready(migrate=migrate)

    def close(self) -> None:
        self.database.close()

    # ---- queries ------------------------------------------------------------------------------

    def get_user_features(self, user_id: str, max_recent_items: int) -> UserFeatures:
        return self.queries.get_user_features(user_id, max_recent_items)

    def get_item_features(self, item_ids: Sequence[str]) -> ItemLookup:
        return self.queries.get_item_features(item_ids)

    def get_popular_items(self, limit: int, exclusions: Iterable[str] = ()) -> PopularItems:
        return self.queries.get_popular_items(limit, exclusions)

    # ---- ingest -------------------------------------------------------------------------------

    def ingest_events(self, batch: Sequence[Event]) -> IngestResult:
        return self.ingest.ingest_events(batch)

    # ---- admin --------------------------------------------------------------------------------

    def load_catalog(self, catalog: Sequence[Item]) -> CatalogLoadResult:
        return self.admin.load_catalog(catalog)

    def set_item_availability(self, item_ids: Sequence[str], available: bool) -> AvailabilityResult:
        return self.admin.set_item_availability(item_ids, available)

    def contribution_bounded_counts(
        self,
        kind: AggregateKind,
        max_contributions_per_user: int,
        window: EventWindow | None = None,
    ) -> dict[str, int]:
        return self.admin.contribution_bounded_counts(kind, max_contributions_per_user, window)

    def set_item_popularity(
        self, release_id: str, popularities: Sequence[tuple[str, float]]
    ) -> int:
        return self.admin.set_item_popularity(release_id, popularities)

    def rename_users(self, mapping: Mapping[str, str]) -> int:
        return self.admin.rename_users(mapping)

    def rebuild_user_features(self, user_ids: Sequence[str] | None = None) -> int:
        return self.admin.rebuild_user_features(user_ids)

    # ---- seeding: catalog and events ----------------------------------------------------------

    def seed_dataset(
        self,
        dataset: Dataset,
        pseudonymize: Callable[[str], str],
        *,
        batch_size: int = 2000,
    ) -> SeedResult:
        """Load a dataset's catalog and interactions; raw user ids go through ``pseudonymize``
        and only its output reaches the database.

        Event ids are ``<dataset name>:<position in the time-sorted log>``: deterministic, so
        seeding twice stores nothing new, and free of user ids, so they survive key rotation.
        Naive timestamps (the Online Retail file has no zone) are taken as UTC.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        catalog = self.admin.load_catalog(
            [
                Item(
                    it.item_id,
                    it.title,
                    tuple(it.category_path),
                    it.price,
                    # A file withdraws items, it never re-enables one an operator withdrew.
                    available=None if it.available else False,
                )
                for it in dataset.items.values()
            ]
        )
        pseudonyms: dict[str, str] = {}
        for raw in dataset.users():
            pseudonym = pseudonymize(raw)
            if not pseudonym or pseudonym == raw:
                raise ValueError("pseudonymize returned an empty or unchanged id")
            pseudonyms[raw] = pseudonym
        accepted = duplicates = 0
        log_ = dataset.interactions
        for start in range(0, len(log_), batch_size):
            result = self.ingest.ingest_events(
                [
                    Event(
                        event_id=f"{dataset.name}:{start + j:09d}",
                        user_id=pseudonyms[x.user_id],
                        item_id=x.item_id,
                        event_type=x.event_type,
                        timestamp=_aware(x.timestamp),
                        quantity=x.quantity,
                    )
                    for j, x in enumerate(log_[start : start + batch_size])
                ]
            )
            accepted += result.accepted
            duplicates += result.duplicates
        return SeedResult(
            items_inserted=catalog.inserted,
            items_updated=catalog.updated,
            events_accepted=accepted,
            events_duplicate=duplicates,
            users=len(pseudonyms),
        )


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
