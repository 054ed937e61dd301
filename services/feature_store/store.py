"""The feature store domain: catalog, event log and derived user features on SQLAlchemy.

No gRPC here: the servicer converts messages to the dataclasses below. Validation errors raise
``shared.errors.InvalidArgument`` with a message that names the offending field
(``events[3].item_id is empty``); messages never echo user ids.

Decisions worth knowing:
- Events for items that are not in the catalog are REJECTED (the whole batch, naming the
  field). Derived features need the item's category, the contribution-bounded counts must stay
  inside the public catalog domain, and a typo'd item id in a client would otherwise silently
  become a phantom item. Load the catalog first.
- Idempotency is by event id only: a second event with a known id is acknowledged as a
  duplicate and changes nothing, even when its other fields differ.
- Derived features are commutative updates (counts add, times take the maximum), so batches
  may arrive in any order or concurrently and give the same features as
  ``rebuild_user_features`` computes from the log.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.feature_store import db
from services.feature_store.schema import (
    CATEGORY_MAX,
    EVENT_ID_MAX,
    EVENT_TYPE_VALUES,
    ITEM_ID_MAX,
    RELEASE_ID_MAX,
    USER_ID_MAX,
    events,
    items,
    popularity_releases,
    user_categories,
    user_items,
    user_stats,
    users,
)
from shared.data.types import Dataset
from shared.errors import InvalidArgument

log = logging.getLogger(__name__)

T = TypeVar("T")

# Rows per statement: SQLite allows 32766 bound parameters and the events table has 8 columns.
CHUNK = 500
# Weight of one event in a user's category affinity: a purchase says more about taste than a
# view, as in implicit-feedback confidence weighting (Hu, Koren & Volinsky, ICDM 2008).
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {"view": 1.0, "add_to_cart": 2.0, "purchase": 4.0}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Item:
    """Catalog attributes of one item plus its released DP popularity."""

    item_id: str
    title: str
    category_path: tuple[str, ...]
    price: float
    embedding_version: str = ""
    dp_popularity: float = 0.0


@dataclass(frozen=True)
class Event:
    """One interaction keyed by a pseudonymous user id; ``timestamp`` must be time-zone aware."""

    event_id: str
    user_id: str
    item_id: str
    event_type: str
    timestamp: datetime | None
    quantity: int = 1


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
class PopularItems:
    """Items by decreasing DP popularity and the release their popularity comes from."""

    items: list[Item]
    release_id: str


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


# What an Item needs; bookkeeping columns (updated_at) are not parsed on the hot read path.
_ITEM_COLUMNS = (
    items.c.item_id,
    items.c.title,
    items.c.category_path,
    items.c.price,
    items.c.embedding_version,
    items.c.dp_popularity,
)


def _chunks(seq: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _check_id(value: str, name: str, limit: int) -> None:
    if not value:
        raise InvalidArgument(f"{name} is empty")
    if len(value) > limit:
        raise InvalidArgument(f"{name} is longer than {limit} characters")


def _later(a: sa.ColumnElement[Any], b: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The later of two timestamps; portable (SQLite has max(a, b), PostgreSQL greatest)."""
    return sa.case((a > b, a), else_=b)


class FeatureStore:
    """Catalog, event log and derived user features on one SQLAlchemy engine.

    Thread-safe: the servicer calls it from a bounded executor. ``clock`` stamps rows and
    bounds how far in the future an event may claim to be.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_clock_skew: timedelta = timedelta(hours=1),
        event_weights: Mapping[str, float] = DEFAULT_EVENT_WEIGHTS,
    ) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database backend {engine.dialect.name!r}")
        if set(event_weights) != set(EVENT_TYPE_VALUES):
            raise ValueError(f"event_weights needs exactly the keys {EVENT_TYPE_VALUES}")
        self.engine = engine
        self._clock = clock
        self._max_clock_skew = max_clock_skew
        self._weights = dict(event_weights)
        self._migrated = False
        self._insert: Callable[[sa.Table], Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 5, **kwargs: Any) -> FeatureStore:
        return cls(db.create_engine(url, pool_size=pool_size), **kwargs)

    # ---- lifecycle -------------------------------------------------------------------------

    def migrate(self) -> None:
        """Apply pending Alembic migrations (``upgrade head``)."""
        db.upgrade(self.engine)

    def is_ready(self) -> bool:
        """True when the database answers and is at the newest migration."""
        try:
            with self.engine.connect() as conn:
                return db.current_revision(conn) == db.head_revision()
        except sa.exc.SQLAlchemyError as exc:
            log.warning("database check failed", extra={"error": type(exc).__name__})
            return False

    def check_ready(self, *, migrate: bool = False) -> bool:
        """Readiness probe: apply migrations first when asked (until that succeeds once),
        then ``is_ready``. Raises when the migration fails; the caller retries later."""
        if migrate and not self._migrated:
            self.migrate()
            self._migrated = True
        return self.is_ready()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{db.WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[sa.Connection]:
        """A read transaction whose statements all see one snapshot."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    # ---- reads -----------------------------------------------------------------------------

    def get_user_features(self, user_id: str, max_recent_items: int) -> UserFeatures:
        """Features of one pseudonymous user; an unknown user gets empty features."""
        _check_id(user_id, "user_id", USER_ID_MAX)
        if max_recent_items < 0:
            raise InvalidArgument("max_recent_items must not be negative")
        with self._snapshot() as conn:
            stats = conn.execute(
                sa.select(user_stats).where(user_stats.c.user_id == user_id)
            ).one_or_none()
            if stats is None:
                return UserFeatures(user_id=user_id, known=False)
            recent: list[str] = list(
                conn.scalars(
                    sa.select(user_items.c.item_id)
                    .where(user_items.c.user_id == user_id)
                    .order_by(user_items.c.last_event_time.desc(), user_items.c.item_id)
                    .limit(max_recent_items)
                )
            )
            cats: list[tuple[str, float]] = [
                (row.category, float(row.weight))
                for row in conn.execute(
                    sa.select(user_categories.c.category, user_categories.c.weight)
                    .where(user_categories.c.user_id == user_id)
                    .order_by(user_categories.c.weight.desc(), user_categories.c.category)
                )
            ]
            purchased: list[str] = list(
                conn.scalars(
                    sa.select(user_items.c.item_id)
                    .where(user_items.c.user_id == user_id, user_items.c.purchased_quantity > 0)
                    .order_by(user_items.c.item_id)
                )
            )
        total = sum(w for _, w in cats) or 1.0
        return UserFeatures(
            user_id=user_id,
            known=True,
            recent_item_ids=list(recent),
            category_affinities=[(c, w / total) for c, w in cats],
            event_count=stats.event_count,
            purchase_count=stats.purchase_count,
            last_event_time=stats.last_event_time,
            purchased_item_ids=list(purchased),
        )

    def get_item_features(self, item_ids: Sequence[str]) -> ItemLookup:
        """Items in request order (repeats included) plus the ids not in the catalog.

        One SELECT for the whole batch: the caller's limit keeps it under the backends'
        bound-parameter limits.
        """
        for i, item_id in enumerate(item_ids):
            _check_id(item_id, f"item_ids[{i}]", ITEM_ID_MAX)
        if not item_ids:
            return ItemLookup([], [])
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*_ITEM_COLUMNS).where(items.c.item_id.in_(sorted(set(item_ids))))
            ).all()
        found = {row.item_id: _item(row) for row in rows}
        return ItemLookup(
            items=[found[i] for i in item_ids if i in found],
            missing_item_ids=[i for i in item_ids if i not in found],
        )

    def get_popular_items(self, limit: int, exclusions: Iterable[str] = ()) -> PopularItems:
        """The ``limit`` items with the highest DP popularity, ``exclusions`` left out.

        Ties (and the whole catalog before the first release) are ordered by item id, so the
        fallback list is deterministic.
        """
        if limit < 1:
            raise InvalidArgument("limit must be at least 1")
        excluded = sorted(set(exclusions))
        query = (
            sa.select(*_ITEM_COLUMNS, items.c.popularity_release_id)
            .order_by(items.c.dp_popularity.desc(), items.c.item_id)
            .limit(limit)
        )
        if excluded:
            query = query.where(items.c.item_id.not_in(excluded))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        release = next((r.popularity_release_id for r in rows if r.popularity_release_id), "")
        return PopularItems([_item(r) for r in rows], release)

    def contribution_bounded_counts(
        self, kind: AggregateKind, max_contributions_per_user: int
    ) -> dict[str, int]:
        """Distinct users per key, each user counted for at most ``max_contributions_per_user``
        keys (their most recent ones), over the whole public domain, zeros included.

        Bounding each user's contribution bounds the L1 sensitivity of the counts by that
        number, which is what the privacy gateway's Laplace/Gaussian mechanisms need
        (Dwork & Roth, "The Algorithmic Foundations of Differential Privacy", 2014, ch. 3).
        The domain is the catalog (items or top-level categories), never the data, so the set of
        released keys does not depend on any user.
        """
        if max_contributions_per_user < 1:
            raise InvalidArgument("max_contributions_per_user must be at least 1")
        if kind is AggregateKind.ITEM_POPULARITY:
            source, key = user_items, user_items.c.item_id
            domain = sa.select(items.c.item_id.label("key")).subquery()
        else:
            source, key = user_categories, user_categories.c.category
            domain = sa.select(items.c.top_category.label("key")).distinct().subquery()
        rank = (
            sa.func.row_number()
            .over(partition_by=source.c.user_id, order_by=(source.c.last_event_time.desc(), key))
            .label("rank")
        )
        ranked = sa.select(key.label("key"), rank).subquery()
        bounded = (
            sa.select(ranked.c.key, sa.func.count().label("n"))
            .where(ranked.c.rank <= max_contributions_per_user)
            .group_by(ranked.c.key)
            .subquery()
        )
        query = (
            sa.select(domain.c.key, sa.func.coalesce(bounded.c.n, 0))
            .select_from(domain.outerjoin(bounded, bounded.c.key == domain.c.key))
            .order_by(domain.c.key)
        )
        with self.engine.connect() as conn:
            return {str(row[0]): int(row[1]) for row in conn.execute(query)}

    # ---- writes ----------------------------------------------------------------------------

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
        with self._write() as conn:
            categories = self._top_categories(conn, {e.item_id for _, e in unique.values()})
            for i, event in unique.values():
                if event.item_id not in categories:
                    raise InvalidArgument(f"events[{i}].item_id is not in the catalog")
            self._ensure_users(conn, {e.user_id for _, e in unique.values()}, now)
            inserted = self._insert_events(conn, [e for _, e in unique.values()], categories, now)
            fresh = [e for _, e in unique.values() if e.event_id in inserted]
            self._apply_derived(conn, fresh, categories)
        log.info("events ingested", extra={"accepted": len(fresh), "batch": len(batch)})
        return IngestResult(accepted=len(fresh), duplicates=len(batch) - len(fresh))

    def _validate_event(self, i: int, event: Event, now: datetime) -> None:
        _check_id(event.event_id, f"events[{i}].event_id", EVENT_ID_MAX)
        _check_id(event.user_id, f"events[{i}].user_id", USER_ID_MAX)
        _check_id(event.item_id, f"events[{i}].item_id", ITEM_ID_MAX)
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

    def _top_categories(self, conn: sa.Connection, item_ids: set[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(sorted(item_ids)):
            rows = conn.execute(
                sa.select(items.c.item_id, items.c.top_category).where(items.c.item_id.in_(chunk))
            )
            out.update({r.item_id: r.top_category for r in rows})
        return out

    def _ensure_users(self, conn: sa.Connection, user_ids: set[str], now: datetime) -> None:
        rows = [{"user_id": u, "created_at": now} for u in sorted(user_ids)]
        stmt = self._insert(users).on_conflict_do_nothing(index_elements=["user_id"])
        for chunk in _chunks(rows):
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
            }
            for e in sorted(batch, key=lambda e: e.event_id)
        ]
        # executemany + RETURNING: SQLAlchemy's "insertmanyvalues" batches the rows into
        # multi-row INSERTs from one cached compiled statement.
        stmt = (
            self._insert(events)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(events.c.event_id)
        )
        inserted: set[str] = set()
        for chunk in _chunks(rows):
            inserted.update(conn.execute(stmt, list(chunk)).scalars())
        return inserted

    def _apply_derived(
        self, conn: sa.Connection, fresh: Sequence[Event], categories: Mapping[str, str]
    ) -> None:
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
        stmt = self._insert(table)
        updates: dict[str, Any] = {col: table.c[col] + stmt.excluded[col] for col in add}
        updates["last_event_time"] = _later(stmt.excluded.last_event_time, table.c.last_event_time)
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=updates)
        for chunk in _chunks(rows):
            conn.execute(stmt, list(chunk))

    def load_catalog(self, catalog: Sequence[Item]) -> CatalogLoadResult:
        """Insert or update items in one transaction, in batched statements.

        ``dp_popularity`` of the input is ignored: only a privacy release sets it.
        """
        seen: dict[str, int] = {}
        for i, item in enumerate(catalog):
            _validate_item(i, item)
            if item.item_id in seen:
                raise InvalidArgument(f"items[{i}].item_id repeats items[{seen[item.item_id]}]")
            seen[item.item_id] = i
        if not catalog:
            return CatalogLoadResult(0, 0)
        now = self._clock()
        rows = [
            {
                "item_id": it.item_id,
                "title": it.title,
                "category_path": list(it.category_path),
                "top_category": it.category_path[0],
                "price": float(it.price),
                "embedding_version": it.embedding_version,
                "updated_at": now,
            }
            for it in sorted(catalog, key=lambda it: it.item_id)
        ]
        stmt = self._insert(items)
        stmt = stmt.on_conflict_do_update(
            index_elements=["item_id"],
            set_={
                col: stmt.excluded[col]
                for col in (
                    "title",
                    "category_path",
                    "top_category",
                    "price",
                    "embedding_version",
                    "updated_at",
                )
            },
        )
        updated = 0
        with self._write() as conn:
            for chunk in _chunks(rows):
                ids = [r["item_id"] for r in chunk]
                updated += len(
                    conn.scalars(sa.select(items.c.item_id).where(items.c.item_id.in_(ids))).all()
                )
                conn.execute(stmt, list(chunk))
        log.info("catalog loaded", extra={"items": len(rows), "updated": updated})
        return CatalogLoadResult(inserted=len(rows) - updated, updated=updated)

    def set_item_popularity(
        self, release_id: str, popularities: Sequence[tuple[str, float]]
    ) -> int:
        """Store one DP popularity release; it replaces the previous release entirely.

        Items the release does not mention get popularity 0 under the new release id, so the
        popular list never mixes two releases. Unknown item ids are ignored. Returns the
        number of catalog items whose popularity the release set.
        """
        _check_id(release_id, "release_id", RELEASE_ID_MAX)
        seen: dict[str, int] = {}
        for i, (key, value) in enumerate(popularities):
            _check_id(key, f"popularities[{i}].key", ITEM_ID_MAX)
            if not math.isfinite(value):
                raise InvalidArgument(f"popularities[{i}].count is not a finite number")
            if key in seen:
                raise InvalidArgument(f"popularities[{i}].key repeats popularities[{seen[key]}]")
            seen[key] = i
        rows = [{"b_item_id": k, "b_pop": float(v)} for k, v in sorted(popularities)]
        set_one = (
            sa.update(items)
            .where(items.c.item_id == sa.bindparam("b_item_id"))
            .values(dp_popularity=sa.bindparam("b_pop"))
        )
        updated = 0
        with self._write() as conn:
            conn.execute(
                sa.update(items).values(dp_popularity=0.0, popularity_release_id=release_id)
            )
            for chunk in _chunks(rows):
                ids = [r["b_item_id"] for r in chunk]
                updated += len(
                    conn.scalars(sa.select(items.c.item_id).where(items.c.item_id.in_(ids))).all()
                )
                conn.execute(set_one, list(chunk))
            stmt = self._insert(popularity_releases)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["release_id"],
                    set_={
                        "applied_at": stmt.excluded.applied_at,
                        "item_count": stmt.excluded.item_count,
                    },
                ),
                {"release_id": release_id, "applied_at": self._clock(), "item_count": updated},
            )
        log.info("popularity release applied", extra={"items": updated})
        return updated

    def rename_users(self, mapping: Mapping[str, str]) -> int:
        """Re-key users after a pseudonymization key rotation; returns how many were renamed.

        Events and derived features follow through ON UPDATE CASCADE. When the new pseudonym
        already has events (traffic arrived under the new key during the rotation), the two
        histories are merged and that user's features rebuilt from the log. Each chunk of
        users commits on its own, and users already re-keyed are skipped, so an interrupted
        job is simply run again.
        """
        targets: dict[str, str] = {}
        for old, new in mapping.items():
            _check_id(old, "mapping key", USER_ID_MAX)
            _check_id(new, "mapping value", USER_ID_MAX)
            if new in targets:
                raise InvalidArgument("mapping is not one-to-one: two users map to one pseudonym")
            targets[new] = old
        if set(targets) & set(mapping):
            raise InvalidArgument("mapping chains pseudonyms: a new pseudonym is also an old one")
        renamed = 0
        for chunk in _chunks(sorted(mapping.items())):
            with self._write() as conn:
                renamed += self._rename_chunk(conn, dict(chunk))
        log.info("users re-keyed", extra={"renamed": renamed, "requested": len(mapping)})
        return renamed

    def _rename_chunk(self, conn: sa.Connection, chunk: dict[str, str]) -> int:
        present: set[str] = set(
            conn.scalars(sa.select(users.c.user_id).where(users.c.user_id.in_(chunk)))
        )
        taken: set[str] = set(
            conn.scalars(sa.select(users.c.user_id).where(users.c.user_id.in_(chunk.values())))
        )
        moves = [(o, n) for o, n in chunk.items() if o in present and n not in taken]
        merges = [(o, n) for o, n in chunk.items() if o in present and n in taken]
        if moves:
            conn.execute(
                sa.update(users)
                .where(users.c.user_id == sa.bindparam("b_old"))
                .values(user_id=sa.bindparam("b_new")),
                [{"b_old": o, "b_new": n} for o, n in moves],
            )
        if merges:
            conn.execute(
                sa.update(events)
                .where(events.c.user_id == sa.bindparam("b_old"))
                .values(user_id=sa.bindparam("b_new")),
                [{"b_old": o, "b_new": n} for o, n in merges],
            )
            # Deleting the old user cascades to its derived rows; its events moved above.
            conn.execute(sa.delete(users).where(users.c.user_id.in_([o for o, _ in merges])))
            self._rebuild(conn, [n for _, n in merges])
        return len(moves) + len(merges)

    def rebuild_user_features(self, user_ids: Sequence[str] | None = None) -> int:
        """Recompute derived features from the event log (all users when None).

        A repair tool, and the reference the incremental updates are tested against.
        """
        with self._write() as conn:
            if user_ids is None:
                user_ids = list(conn.scalars(sa.select(users.c.user_id)))
            for chunk in _chunks(sorted(set(user_ids))):
                self._rebuild(conn, chunk)
        return len(user_ids)

    def _rebuild(self, conn: sa.Connection, user_ids: Sequence[str]) -> None:
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
        catalog = self.load_catalog(
            [
                Item(it.item_id, it.title, tuple(it.category_path), it.price)
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
            result = self.ingest_events(
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


def _validate_item(i: int, item: Item) -> None:
    _check_id(item.item_id, f"items[{i}].item_id", ITEM_ID_MAX)
    if not item.title.strip():
        raise InvalidArgument(f"items[{i}].title is empty")
    if not item.category_path:
        raise InvalidArgument(f"items[{i}].category_path is empty")
    for j, part in enumerate(item.category_path):
        _check_id(part.strip(), f"items[{i}].category_path[{j}]", CATEGORY_MAX)
    if not math.isfinite(item.price) or item.price < 0:
        raise InvalidArgument(f"items[{i}].price must be a finite number >= 0")
    if len(item.embedding_version) > 64:
        raise InvalidArgument(f"items[{i}].embedding_version is longer than 64 characters")


def _item(row: sa.Row[Any]) -> Item:
    return Item(
        item_id=row.item_id,
        title=row.title,
        category_path=tuple(row.category_path),
        price=row.price,
        embedding_version=row.embedding_version,
        dp_popularity=row.dp_popularity,
    )
