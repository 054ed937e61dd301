"""Administrative and privacy-facing work on the feature store: the catalog, the
contribution-bounded counts the privacy gateway releases with differential privacy, the
released popularity written back, and re-keying users after a pseudonymization key rotation.

None of this is on the recommendation path; the servicer reserves the counts and the
popularity write-back for the privacy gateway.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa

from services.feature_store.db import Database, chunks
from services.feature_store.derived import DerivedFeatures
from services.feature_store.model import (
    AggregateKind,
    AvailabilityResult,
    CatalogLoadResult,
    Item,
    check_id,
    utcnow,
)
from services.feature_store.schema import (
    CATEGORY_MAX,
    ITEM_ID_MAX,
    RELEASE_ID_MAX,
    USER_ID_MAX,
    events,
    items,
    popularity_releases,
    user_categories,
    user_items,
    users,
)
from shared.errors import FailedPrecondition, InvalidArgument
from shared.event_window import EventWindow

log = logging.getLogger(__name__)


class FeatureAdmin:
    """Catalog loads, DP counts and their release, user re-keying and feature repair."""

    def __init__(
        self,
        database: Database,
        derived: DerivedFeatures,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = database
        self._derived = derived
        self._clock = clock

    def contribution_bounded_counts(
        self,
        kind: AggregateKind,
        max_contributions_per_user: int,
        window: EventWindow | None = None,
    ) -> dict[str, int]:
        """Distinct users per key, each user counted for at most ``max_contributions_per_user``
        keys (their most recent ones), over the whole public domain, zeros included.

        Only events with ``window.start <= event_time < window.end`` count (every event when
        ``window`` is None), and the bound holds within the window: a user's keys and their
        recency are those of their events in it. A release per disjoint window thus reads
        disjoint parts of each person's events, which is what lets the privacy gateway's
        ledger compose such releases in parallel.

        Bounding each user's contribution bounds the L1 sensitivity of the counts by that
        number, which is what the privacy gateway's Laplace/Gaussian mechanisms need
        (Dwork & Roth, "The Algorithmic Foundations of Differential Privacy", 2014, ch. 3).
        The domain is the catalog (items or top-level categories), never the data, so the set of
        released keys does not depend on any user.

        The bound is per pseudonym, and between a key rotation and the rekey job one person
        holds data under two pseudonyms (one per key version), so they could contribute
        twice the bound while the noise is calibrated for one. The store cannot link the two
        (that needs the raw id), so it refuses with FAILED_PRECONDITION while more than one
        key version holds data; the rekey job (``python -m ops.rekey``) ends that state.
        """
        if max_contributions_per_user < 1:
            raise InvalidArgument("max_contributions_per_user must be at least 1")
        if kind is AggregateKind.ITEM_POPULARITY:
            source, key = user_items, user_items.c.item_id
            domain = sa.select(items.c.item_id.label("key")).subquery()
        else:
            source, key = user_categories, user_categories.c.category
            domain = sa.select(items.c.top_category.label("key")).distinct().subquery()
        per_user = _per_user_keys(kind, window, source, key)
        rank = (
            sa.func.row_number()
            .over(
                partition_by=per_user.c.user_id,
                order_by=(per_user.c.last_event_time.desc(), per_user.c.key),
            )
            .label("rank")
        )
        ranked = sa.select(per_user.c.key, rank).subquery()
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
        with self._db.read() as conn:
            versions = self._key_versions(conn, source.c.user_id)
            if len(versions) > 1:
                raise FailedPrecondition(
                    "users are stored under more than one pseudonymization key version "
                    f"({', '.join(sorted(versions))}): run the rekey job before a release, "
                    "or one person could contribute once per version"
                )
            return {str(row[0]): int(row[1]) for row in conn.execute(query)}

    @staticmethod
    def _key_versions(conn: sa.Connection, user_id: sa.ColumnElement[str]) -> set[str]:
        """Up to two distinct key versions (the pseudonym's prefix before ".") with data."""
        if conn.dialect.name == "postgresql":
            prefix = sa.func.split_part(user_id, ".", 1)
        else:
            prefix = sa.func.substr(user_id, 1, sa.func.instr(user_id, ".") - 1)
        rows = conn.execute(sa.select(prefix).distinct().limit(2)).all()
        return {str(r[0]) for r in rows}

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
                "available": True if it.available is None else it.available,
            }
            for it in sorted(catalog, key=lambda it: it.item_id)
        ]
        given = {it.item_id for it in catalog if it.available is not None}
        columns = ["title", "category_path", "top_category", "price", "embedding_version"]
        # Two statements: an update writes availability only when the load states it, so a
        # re-seed of the catalog never makes a withdrawn item available again by omission.
        statements = {}
        for states in (True, False):
            stmt = self._db.insert(items)
            updated_columns = [*columns, "updated_at", *(["available"] if states else [])]
            statements[states] = stmt.on_conflict_do_update(
                index_elements=["item_id"],
                set_={col: stmt.excluded[col] for col in updated_columns},
            )
        updated = 0
        with self._db.write() as conn:
            for states in (True, False):
                part = [r for r in rows if (r["item_id"] in given) is states]
                for chunk in chunks(part):
                    ids = [r["item_id"] for r in chunk]
                    updated += len(
                        conn.scalars(
                            sa.select(items.c.item_id).where(items.c.item_id.in_(ids))
                        ).all()
                    )
                    conn.execute(statements[states], list(chunk))
        log.info("catalog loaded", extra={"items": len(rows), "updated": updated})
        return CatalogLoadResult(inserted=len(rows) - updated, updated=updated)

    def set_item_availability(self, item_ids: Sequence[str], available: bool) -> AvailabilityResult:
        """Mark catalog items available or not in one transaction; unknown ids are reported,
        not created (an item enters the catalog through ``load_catalog`` with its title)."""
        seen: dict[str, int] = {}
        for i, item_id in enumerate(item_ids):
            check_id(item_id, f"item_ids[{i}]", ITEM_ID_MAX)
            if item_id in seen:
                raise InvalidArgument(f"item_ids[{i}] repeats item_ids[{seen[item_id]}]")
            seen[item_id] = i
        if not item_ids:
            raise InvalidArgument("item_ids must not be empty")
        now = self._clock()
        found: set[str] = set()
        with self._db.write() as conn:
            for chunk in chunks(sorted(seen)):
                ids = list(chunk)
                found.update(
                    conn.scalars(sa.select(items.c.item_id).where(items.c.item_id.in_(ids)))
                )
                conn.execute(
                    sa.update(items)
                    .where(items.c.item_id.in_(ids))
                    .values(available=available, updated_at=now)
                )
        missing = [i for i in item_ids if i not in found]
        log.info(
            "item availability set",
            extra={"items": len(found), "available": available, "missing": len(missing)},
        )
        return AvailabilityResult(updated=len(found), missing_item_ids=missing)

    def set_item_popularity(
        self, release_id: str, popularities: Sequence[tuple[str, float]]
    ) -> int:
        """Store one DP popularity release; it replaces the previous release entirely.

        Items the release does not mention get popularity 0 under the new release id, so the
        popular list never mixes two releases. Unknown item ids are ignored. Returns the
        number of catalog items whose popularity the release set.
        """
        check_id(release_id, "release_id", RELEASE_ID_MAX)
        seen: dict[str, int] = {}
        for i, (key, value) in enumerate(popularities):
            check_id(key, f"popularities[{i}].key", ITEM_ID_MAX)
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
        with self._db.write() as conn:
            conn.execute(
                sa.update(items).values(dp_popularity=0.0, popularity_release_id=release_id)
            )
            for chunk in chunks(rows):
                ids = [r["b_item_id"] for r in chunk]
                updated += len(
                    conn.scalars(sa.select(items.c.item_id).where(items.c.item_id.in_(ids))).all()
                )
                conn.execute(set_one, list(chunk))
            stmt = self._db.insert(popularity_releases)
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
            check_id(old, "mapping key", USER_ID_MAX)
            check_id(new, "mapping value", USER_ID_MAX)
            if new in targets:
                raise InvalidArgument("mapping is not one-to-one: two users map to one pseudonym")
            targets[new] = old
        if set(targets) & set(mapping):
            raise InvalidArgument("mapping chains pseudonyms: a new pseudonym is also an old one")
        renamed = 0
        for chunk in chunks(sorted(mapping.items())):
            with self._db.write() as conn:
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
            self._derived.rebuild(conn, [n for _, n in merges])
        return len(moves) + len(merges)

    def rebuild_user_features(self, user_ids: Sequence[str] | None = None) -> int:
        """Recompute derived features from the event log (all users when None).

        A repair tool, and the reference the incremental updates are tested against.
        """
        with self._db.write() as conn:
            if user_ids is None:
                user_ids = list(conn.scalars(sa.select(users.c.user_id)))
            for chunk in chunks(sorted(set(user_ids))):
                self._derived.rebuild(conn, chunk)
        return len(user_ids)


def _per_user_keys(
    kind: AggregateKind,
    window: EventWindow | None,
    source: sa.Table,
    key: sa.ColumnElement[str],
) -> sa.Subquery:
    """(user_id, key, last_event_time) per distinct user and key.

    Over every event the derived table already holds exactly this (it is maintained from
    the log in the ingest transaction); over a window it is grouped from the window's events,
    whose ``category`` is the item's top category when the event arrived, as in the derived
    table.
    """
    if window is None:
        return sa.select(source.c.user_id, key.label("key"), source.c.last_event_time).subquery()
    event_key = events.c.item_id if kind is AggregateKind.ITEM_POPULARITY else events.c.category
    return (
        sa.select(
            events.c.user_id,
            event_key.label("key"),
            sa.func.max(events.c.event_time).label("last_event_time"),
        )
        .where(events.c.event_time >= window.start, events.c.event_time < window.end)
        .group_by(events.c.user_id, event_key)
        .subquery()
    )


def _validate_item(i: int, item: Item) -> None:
    check_id(item.item_id, f"items[{i}].item_id", ITEM_ID_MAX)
    if not item.title.strip():
        raise InvalidArgument(f"items[{i}].title is empty")
    if not item.category_path:
        raise InvalidArgument(f"items[{i}].category_path is empty")
    for j, part in enumerate(item.category_path):
        check_id(part.strip(), f"items[{i}].category_path[{j}]", CATEGORY_MAX)
    if not math.isfinite(item.price) or item.price < 0:
        raise InvalidArgument(f"items[{i}].price must be a finite number >= 0")
    if len(item.embedding_version) > 64:
        raise InvalidArgument(f"items[{i}].embedding_version is longer than 64 characters")
