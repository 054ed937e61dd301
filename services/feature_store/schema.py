"""Relational schema of the feature store (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Alembic migrations under ``migrations/versions`` create exactly these tables; a test compares
the two so they cannot drift. Users are known only by the pseudonym the privacy gateway issued.
Derived user features live in their own tables and are updated in the transaction that inserts
the events, so a reader never sees an event without its features or the other way round.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

ITEM_ID_MAX = 64
USER_ID_MAX = 128
EVENT_ID_MAX = 128
CATEGORY_MAX = 128
RELEASE_ID_MAX = 128
RECOMMENDATION_ID_MAX = 64
EXPERIMENT_NAME_MAX = 64
METHOD_MAX = 32
# Longest list a position or a served list may claim (the orchestrator's max_k is far below).
MAX_POSITION = 10_000
EVENT_TYPE_VALUES = ("view", "add_to_cart", "purchase")

# Constraint names are fixed so migrations and metadata name them identically on both backends.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timestamps stored as naive UTC and read back as aware UTC.

    SQLite has no time-zone type and PostgreSQL's ``timestamptz`` would convert to the session
    zone; storing naive UTC gives the same values and ordering on both.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the feature store only stores aware timestamps")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregates (max/min) return the stored text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


items = sa.Table(
    "items",
    metadata,
    sa.Column("item_id", sa.String(ITEM_ID_MAX), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("category_path", sa.JSON, nullable=False),
    # Denormalised first element of category_path: category affinity and CATEGORY_TREND
    # group by it, and JSON indexing differs between the two backends.
    sa.Column("top_category", sa.String(CATEGORY_MAX), nullable=False, index=True),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("embedding_version", sa.String(64), nullable=False, server_default=""),
    sa.Column("dp_popularity", sa.Float, nullable=False, server_default="0", index=True),
    sa.Column("popularity_release_id", sa.String(RELEASE_ID_MAX), nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # False: out of stock or retired; no answer on any path recommends the item. Rows stay
    # (events reference them), so retiring is this flag, never a delete.
    sa.Column("available", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.CheckConstraint("price >= 0", name="price_non_negative"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.String(USER_ID_MAX), primary_key=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


def _user_fk() -> sa.ForeignKey:
    # ON UPDATE CASCADE lets the key-rotation job re-key a user with one UPDATE of users.
    return sa.ForeignKey("users.user_id", onupdate="CASCADE", ondelete="CASCADE")


events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(EVENT_ID_MAX), primary_key=True),
    sa.Column("user_id", sa.String(USER_ID_MAX), _user_fk(), nullable=False),
    sa.Column("item_id", sa.String(ITEM_ID_MAX), sa.ForeignKey("items.item_id"), nullable=False),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("event_time", UtcDateTime, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    # The item's top category when the event arrived: derived features can be rebuilt exactly
    # from the log even after the catalog moves an item.
    sa.Column("category", sa.String(CATEGORY_MAX), nullable=False),
    sa.Column("ingested_at", UtcDateTime, nullable=False),
    # Attribution (migration 0002): the list the shopper acted from and the 1-based position
    # in it; NULL for an event not caused by a recommendation. No foreign key to
    # served_lists: that row is written asynchronously and may arrive late or never.
    sa.Column("recommendation_id", sa.String(RECOMMENDATION_ID_MAX), nullable=True),
    sa.Column("position", sa.Integer, nullable=True),
    sa.CheckConstraint("quantity >= 1", name="quantity_positive"),
    sa.CheckConstraint(
        "event_type IN ('view', 'add_to_cart', 'purchase')", name="event_type_known"
    ),
)
sa.Index("ix_events_user_id_event_time", events.c.user_id, events.c.event_time)
sa.Index("ix_events_item_id", events.c.item_id)
sa.Index("ix_events_recommendation_id", events.c.recommendation_id)

user_stats = sa.Table(
    "user_stats",
    metadata,
    sa.Column("user_id", sa.String(USER_ID_MAX), _user_fk(), primary_key=True),
    sa.Column("event_count", sa.BigInteger, nullable=False),
    sa.Column("purchase_count", sa.BigInteger, nullable=False),
    sa.Column("last_event_time", UtcDateTime, nullable=False),
)

# One row per distinct (user, item): recent items, purchased-item exclusion and the
# contribution-bounded item counts all read it.
user_items = sa.Table(
    "user_items",
    metadata,
    sa.Column("user_id", sa.String(USER_ID_MAX), _user_fk(), primary_key=True),
    sa.Column("item_id", sa.String(ITEM_ID_MAX), sa.ForeignKey("items.item_id"), primary_key=True),
    sa.Column("last_event_time", UtcDateTime, nullable=False),
    sa.Column("event_count", sa.BigInteger, nullable=False),
    sa.Column("purchased_quantity", sa.BigInteger, nullable=False),
)
sa.Index(
    "ix_user_items_user_id_last_event_time", user_items.c.user_id, user_items.c.last_event_time
)

user_categories = sa.Table(
    "user_categories",
    metadata,
    sa.Column("user_id", sa.String(USER_ID_MAX), _user_fk(), primary_key=True),
    sa.Column("category", sa.String(CATEGORY_MAX), primary_key=True),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("last_event_time", UtcDateTime, nullable=False),
)

popularity_releases = sa.Table(
    "popularity_releases",
    metadata,
    sa.Column("release_id", sa.String(RELEASE_ID_MAX), primary_key=True),
    sa.Column("applied_at", UtcDateTime, nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
)

# One row per answered Recommend call: the impressions of the online metrics. No user id and
# no item ids: what was shown is the positions 1..item_count, which is all the metrics need.
served_lists = sa.Table(
    "served_lists",
    metadata,
    sa.Column("recommendation_id", sa.String(RECOMMENDATION_ID_MAX), primary_key=True),
    sa.Column("served_at", UtcDateTime, nullable=False, index=True),
    sa.Column("method", sa.String(METHOD_MAX), nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

# The experiment variants of a served list, one row per experiment the shopper was in.
served_list_assignments = sa.Table(
    "served_list_assignments",
    metadata,
    sa.Column(
        "recommendation_id",
        sa.String(RECOMMENDATION_ID_MAX),
        sa.ForeignKey("served_lists.recommendation_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("experiment", sa.String(EXPERIMENT_NAME_MAX), primary_key=True),
    sa.Column("variant", sa.String(EXPERIMENT_NAME_MAX), nullable=False),
)
sa.Index(
    "ix_served_list_assignments_experiment_variant",
    served_list_assignments.c.experiment,
    served_list_assignments.c.variant,
)
