"""The read side of the feature store: user features, item features, popular items.

These serve the recommendation path (the orchestrator's GetUserFeatures, GetItemFeatures and
popularity fallback), so each call is one snapshot or one statement, never a scan of the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from services.feature_store.db import Database
from services.feature_store.model import (
    Item,
    ItemInteraction,
    ItemLookup,
    PopularItems,
    UserFeatures,
    check_id,
)
from services.feature_store.schema import (
    ITEM_ID_MAX,
    USER_ID_MAX,
    items,
    popularity_releases,
    user_categories,
    user_items,
    user_stats,
)
from shared.errors import InvalidArgument

# What an Item needs; bookkeeping columns (updated_at) are not parsed on the hot read path.
_ITEM_COLUMNS = (
    items.c.item_id,
    items.c.title,
    items.c.category_path,
    items.c.price,
    items.c.embedding_version,
    items.c.dp_popularity,
    items.c.available,
)


class FeatureQueries:
    """Reads of the catalog and of derived user features."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get_user_features(self, user_id: str, max_recent_items: int) -> UserFeatures:
        """Features of one pseudonymous user; an unknown user gets empty features."""
        check_id(user_id, "user_id", USER_ID_MAX)
        if max_recent_items < 0:
            raise InvalidArgument("max_recent_items must not be negative")
        with self._db.snapshot() as conn:
            stats = conn.execute(
                sa.select(user_stats).where(user_stats.c.user_id == user_id)
            ).one_or_none()
            if stats is None:
                return UserFeatures(user_id=user_id, known=False)
            # The same rows give the recent items and the shopper's own history with each,
            # which the learned ranking model reads as repeat features.
            interactions = [
                ItemInteraction(
                    item_id=row.item_id,
                    event_count=int(row.event_count),
                    purchased_quantity=int(row.purchased_quantity),
                    last_event_time=row.last_event_time,
                )
                for row in conn.execute(
                    sa.select(
                        user_items.c.item_id,
                        user_items.c.event_count,
                        user_items.c.purchased_quantity,
                        user_items.c.last_event_time,
                    )
                    .where(user_items.c.user_id == user_id)
                    .order_by(user_items.c.last_event_time.desc(), user_items.c.item_id)
                    .limit(max_recent_items)
                )
            ]
            recent = [x.item_id for x in interactions]
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
            item_interactions=interactions,
        )

    def get_item_features(self, item_ids: Sequence[str]) -> ItemLookup:
        """Items in request order (repeats included) plus the ids not in the catalog.

        One SELECT for the whole batch: the caller's limit keeps it under the backends'
        bound-parameter limits.
        """
        for i, item_id in enumerate(item_ids):
            check_id(item_id, f"item_ids[{i}]", ITEM_ID_MAX)
        if not item_ids:
            return ItemLookup([], [])
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(*_ITEM_COLUMNS).where(items.c.item_id.in_(sorted(set(item_ids))))
            ).all()
        found = {row.item_id: _item(row) for row in rows}
        return ItemLookup(
            items=[found[i] for i in item_ids if i in found],
            missing_item_ids=[i for i in item_ids if i not in found],
        )

    def get_popular_items(self, limit: int, exclusions: Iterable[str] = ()) -> PopularItems:
        """The ``limit`` available items with the highest DP popularity, ``exclusions`` left
        out: an unavailable item never enters the popularity fallback.

        Ties (and the whole catalog before the first release) are ordered by item id, so the
        fallback list is deterministic.
        """
        if limit < 1:
            raise InvalidArgument("limit must be at least 1")
        excluded = sorted(set(exclusions))
        query = (
            sa.select(*_ITEM_COLUMNS, items.c.popularity_release_id)
            .where(items.c.available.is_(True))
            .order_by(items.c.dp_popularity.desc(), items.c.item_id)
            .limit(limit)
        )
        if excluded:
            query = query.where(items.c.item_id.not_in(excluded))
        with self._db.read() as conn:
            rows = conn.execute(query).all()
            release = next((r.popularity_release_id for r in rows if r.popularity_release_id), "")
            applied = (
                conn.execute(
                    sa.select(popularity_releases.c.applied_at).where(
                        popularity_releases.c.release_id == release
                    )
                ).scalar_one_or_none()
                if release
                else None
            )
        return PopularItems([_item(r) for r in rows], release, applied)


def _item(row: sa.Row[Any]) -> Item:
    return Item(
        item_id=row.item_id,
        title=row.title,
        category_path=tuple(row.category_path),
        price=row.price,
        embedding_version=row.embedding_version,
        dp_popularity=row.dp_popularity,
        available=bool(row.available),
    )
