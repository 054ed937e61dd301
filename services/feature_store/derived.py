"""Derived user features (user_stats, user_items, user_categories) from the event log.

Two ways to the same tables, kept side by side because each is the other's test oracle: the
incremental update that ingestion applies in the transaction that stores the events, and the
rebuild from the log that repairs features and merges re-keyed users. The incremental updates
are commutative (counts add, times take the maximum), so batches may arrive in any order or
concurrently and give the same features as a rebuild.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from services.feature_store.db import Database, chunks
from services.feature_store.model import Event
from services.feature_store.schema import (
    EVENT_TYPE_VALUES,
    events,
    user_categories,
    user_items,
    user_stats,
)

# Weight of one event in a user's category affinity: a purchase says more about taste than a
# view, as in implicit-feedback confidence weighting (Hu, Koren & Volinsky, ICDM 2008).
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {"view": 1.0, "add_to_cart": 2.0, "purchase": 4.0}


def _later(a: sa.ColumnElement[Any], b: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The later of two timestamps; portable (SQLite has max(a, b), PostgreSQL greatest)."""
    return sa.case((a > b, a), else_=b)


class DerivedFeatures:
    """Maintains the derived tables inside the caller's write transaction."""

    def __init__(
        self, database: Database, event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS
    ) -> None:
        if set(event_weights) != set(EVENT_TYPE_VALUES):
            raise ValueError(f"event_weights needs exactly the keys {EVENT_TYPE_VALUES}")
        self._db = database
        self._weights = dict(event_weights)

    def apply(
        self, conn: sa.Connection, fresh: Sequence[Event], categories: Mapping[str, str]
    ) -> None:
        """Add newly stored events (never a duplicate) to the derived tables."""
        stats: dict[str, list[Any]] = {}
        pairs: dict[tuple[str, str], list[Any]] = {}
        cats: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0.0, None])
        for e in fresh:
            assert e.timestamp is not None  # validated
            bought = e.event_type == "purchase"
            s = stats.setdefault(e.user_id, [0, 0, e.timestamp])
            s[0] += 1
            s[1] += int(bought)
            s[2] = max(s[2], e.timestamp)
            p = pairs.setdefault((e.user_id, e.item_id), [e.timestamp, 0, 0])
            p[0] = max(p[0], e.timestamp)
            p[1] += 1
            p[2] += e.quantity if bought else 0
            c = cats[(e.user_id, categories[e.item_id])]
            c[0] += self._weights[e.event_type]
            c[1] = e.timestamp if c[1] is None else max(c[1], e.timestamp)
        # Sorted keys: concurrent PostgreSQL writers lock rows in the same order (no deadlock).
        self._upsert_add(
            conn,
            user_stats,
            ["user_id"],
            [
                {"user_id": u, "event_count": a, "purchase_count": b, "last_event_time": t}
                for u, (a, b, t) in sorted(stats.items())
            ],
            add=["event_count", "purchase_count"],
        )
        self._upsert_add(
            conn,
            user_items,
            ["user_id", "item_id"],
            [
                {
                    "user_id": u,
                    "item_id": i,
                    "last_event_time": t,
                    "event_count": n,
                    "purchased_quantity": q,
                }
                for (u, i), (t, n, q) in sorted(pairs.items())
            ],
            add=["event_count", "purchased_quantity"],
        )
        self._upsert_add(
            conn,
            user_categories,
            ["user_id", "category"],
            [
                {"user_id": u, "category": c, "weight": w, "last_event_time": t}
                for (u, c), (w, t) in sorted(cats.items())
            ],
            add=["weight"],
        )

    def _upsert_add(
        self,
        conn: sa.Connection,
        table: sa.Table,
        keys: list[str],
        rows: list[dict[str, Any]],
        add: list[str],
    ) -> None:
        """Insert rows, or add the ``add`` columns and keep the later ``last_event_time``."""
        if not rows:
            return
        stmt = self._db.insert(table)
        updates: dict[str, Any] = {col: table.c[col] + stmt.excluded[col] for col in add}
        updates["last_event_time"] = _later(stmt.excluded.last_event_time, table.c.last_event_time)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
        for chunk in chunks(rows):
            conn.execute(stmt, list(chunk))

    def rebuild(self, conn: sa.Connection, user_ids: Sequence[str]) -> None:
        """Replace these users' derived rows with what their events in the log give."""
        for table in (user_stats, user_items, user_categories):
            conn.execute(sa.delete(table).where(table.c.user_id.in_(user_ids)))
        mine = events.c.user_id.in_(user_ids)
        bought = events.c.event_type == "purchase"
        conn.execute(
            user_stats.insert().from_select(
                ["user_id", "event_count", "purchase_count", "last_event_time"],
                sa.select(
                    events.c.user_id,
                    sa.func.count(),
                    sa.func.sum(sa.case((bought, 1), else_=0)),
                    sa.func.max(events.c.event_time),
                )
                .where(mine)
                .group_by(events.c.user_id),
            )
        )
        conn.execute(
            user_items.insert().from_select(
                ["user_id", "item_id", "last_event_time", "event_count", "purchased_quantity"],
                sa.select(
                    events.c.user_id,
                    events.c.item_id,
                    sa.func.max(events.c.event_time),
                    sa.func.count(),
                    sa.func.sum(sa.case((bought, events.c.quantity), else_=0)),
                )
                .where(mine)
                .group_by(events.c.user_id, events.c.item_id),
            )
        )
        weight = sa.case(
            *((events.c.event_type == t, sa.literal(w)) for t, w in self._weights.items()),
            else_=sa.literal(0.0),
        )
        conn.execute(
            user_categories.insert().from_select(
                ["user_id", "category", "weight", "last_event_time"],
                sa.select(
                    events.c.user_id,
                    events.c.category,
                    sa.func.sum(weight),
                    sa.func.max(events.c.event_time),
                )
                .where(mine)
                .group_by(events.c.user_id, events.c.category),
            )
        )
