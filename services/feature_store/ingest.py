"""Event ingestion: validated, idempotent by event id, and durable before it is acknowledged.

Decisions worth knowing:
- Events for items that are not in the catalog are REJECTED (the whole batch, naming the
  field). Derived features need the item's category, the contribution-bounded counts must stay
  inside the public catalog domain, and a typo'd item id in a client would otherwise silently
  become a phantom item. Load the catalog first.
- Idempotency is by event id only: a second event with a known id is acknowledged as a
  duplicate and changes nothing, even when its other fields differ.
- The events and their derived features commit in one transaction before the call returns
  (``services.feature_store.db`` makes that commit survive power loss on both backends).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from services.feature_store.db import Database, chunks
from services.feature_store.derived import DerivedFeatures
from services.feature_store.model import Event, IngestResult, check_id, utcnow
from services.feature_store.schema import (
    EVENT_ID_MAX,
    EVENT_TYPE_VALUES,
    ITEM_ID_MAX,
    MAX_POSITION,
    RECOMMENDATION_ID_MAX,
    USER_ID_MAX,
    events,
    items,
    users,
)
from shared.errors import InvalidArgument

log = logging.getLogger(__name__)


class EventIngest:
    """Stores interaction events and updates derived user features with them.

    ``clock`` stamps rows and bounds how far in the future an event may claim to be.
    """

    def __init__(
        self,
        database: Database,
        derived: DerivedFeatures,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_clock_skew: timedelta = timedelta(hours=1),
    ) -> None:
        self._db = database
        self._derived = derived
        self._clock = clock
        self._max_clock_skew = max_clock_skew

    def ingest_events(self, batch: Sequence[Event]) -> IngestResult:
        """Store events durably (committed before returning), idempotent by event id.

        The whole batch is rejected when any event is malformed or names an item that is not
        in the catalog. Derived user features change in the same transaction.
        """
        now = self._clock()
        for i, event in enumerate(batch):
            self._validate_event(i, event, now)
        unique: dict[str, tuple[int, Event]] = {}
        for i, event in enumerate(batch):
            unique.setdefault(event.event_id, (i, event))
        if not unique:
            return IngestResult(0, 0)
        with self._db.write() as conn:
            categories = _top_categories(conn, {e.item_id for _, e in unique.values()})
            for i, event in unique.values():
                if event.item_id not in categories:
                    raise InvalidArgument(f"events[{i}].item_id is not in the catalog")
            self._ensure_users(conn, {e.user_id for _, e in unique.values()}, now)
            inserted = self._insert_events(conn, [e for _, e in unique.values()], categories, now)
            fresh = [e for _, e in unique.values() if e.event_id in inserted]
            self._derived.apply(conn, fresh, categories)
        log.info("events ingested", extra={"accepted": len(fresh), "batch": len(batch)})
        return IngestResult(accepted=len(fresh), duplicates=len(batch) - len(fresh))

    def _validate_event(self, i: int, event: Event, now: datetime) -> None:
        check_id(event.event_id, f"events[{i}].event_id", EVENT_ID_MAX)
        check_id(event.user_id, f"events[{i}].user_id", USER_ID_MAX)
        check_id(event.item_id, f"events[{i}].item_id", ITEM_ID_MAX)
        if event.event_type not in EVENT_TYPE_VALUES:
            raise InvalidArgument(
                f"events[{i}].type is not a known event type; "
                f"expected one of {', '.join(EVENT_TYPE_VALUES)}"
            )
        if event.quantity < 1:
            raise InvalidArgument(f"events[{i}].quantity must be at least 1")
        if event.timestamp is None:
            raise InvalidArgument(f"events[{i}].timestamp is missing")
        if event.timestamp.tzinfo is None:
            raise InvalidArgument(f"events[{i}].timestamp has no time zone")
        if event.timestamp > now + self._max_clock_skew:
            raise InvalidArgument(f"events[{i}].timestamp is in the future")
        check_attribution(i, event.recommendation_id, event.position)

    def _ensure_users(self, conn: sa.Connection, user_ids: set[str], now: datetime) -> None:
        rows = [{"user_id": u, "created_at": now} for u in sorted(user_ids)]
        stmt = self._db.insert(users).on_conflict_do_nothing(index_elements=["user_id"])
        for chunk in chunks(rows):
            conn.execute(stmt, list(chunk))

    def _insert_events(
        self,
        conn: sa.Connection,
        batch: Sequence[Event],
        categories: Mapping[str, str],
        now: datetime,
    ) -> set[str]:
        """Insert, skipping known ids, and return the ids this transaction inserted.

        ON CONFLICT DO NOTHING ... RETURNING decides atomically which writer owns an event, so
        two concurrent calls with the same event never both update derived features.
        """
        rows = [
            {
                "event_id": e.event_id,
                "user_id": e.user_id,
                "item_id": e.item_id,
                "event_type": e.event_type,
                "event_time": e.timestamp,
                "quantity": e.quantity,
                "category": categories[e.item_id],
                "ingested_at": now,
                "recommendation_id": e.recommendation_id or None,
                "position": e.position or None,
            }
            for e in sorted(batch, key=lambda e: e.event_id)
        ]
        # executemany + RETURNING: SQLAlchemy's "insertmanyvalues" batches the rows into
        # multi-row INSERTs from one cached compiled statement.
        stmt = (
            self._db.insert(events)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(events.c.event_id)
        )
        inserted: set[str] = set()
        for chunk in chunks(rows):
            inserted.update(conn.execute(stmt, list(chunk)).scalars())
        return inserted


def check_attribution(i: int, recommendation_id: str, position: int) -> None:
    """A recommendation id fits its column and is URL-safe text (what Recommend issues); a
    position is 1-based, bounded, and only given together with a recommendation id."""
    if recommendation_id:
        if len(recommendation_id) > RECOMMENDATION_ID_MAX:
            raise InvalidArgument(
                f"events[{i}].recommendation_id is longer than {RECOMMENDATION_ID_MAX} characters"
            )
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in recommendation_id):
            raise InvalidArgument(
                f"events[{i}].recommendation_id may hold only letters, digits, '-' and '_'"
            )
    if position < 0 or position > MAX_POSITION:
        raise InvalidArgument(f"events[{i}].position must be between 0 and {MAX_POSITION}")
    if position and not recommendation_id:
        raise InvalidArgument(f"events[{i}].position needs a recommendation_id")


def _top_categories(conn: sa.Connection, item_ids: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in chunks(sorted(item_ids)):
        rows = conn.execute(
            sa.select(items.c.item_id, items.c.top_category).where(items.c.item_id.in_(chunk))
        )
        out.update({r.item_id: r.top_category for r in rows})
    return out
