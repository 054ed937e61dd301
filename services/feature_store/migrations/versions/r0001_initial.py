"""Initial schema: catalog, pseudonymous users, event log, derived user features, DP releases.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.feature_store.schema import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"],
        ["users.user_id"],
        name=f"fk_{table}_user_id_users",
        onupdate="CASCADE",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("category_path", sa.JSON(), nullable=False),
        sa.Column("top_category", sa.String(128), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("embedding_version", sa.String(64), server_default="", nullable=False),
        sa.Column("dp_popularity", sa.Float(), server_default="0", nullable=False),
        sa.Column("popularity_release_id", sa.String(128), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("price >= 0", name="ck_items_price_non_negative"),
        sa.PrimaryKeyConstraint("item_id", name="pk_items"),
    )
    op.create_index("ix_items_top_category", "items", ["top_category"])
    op.create_index("ix_items_dp_popularity", "items", ["dp_popularity"])

    op.create_table(
        "users",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_users"),
    )

    op.create_table(
        "events",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(16), nullable=False),
        sa.Column("event_time", UtcDateTime(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("ingested_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("quantity >= 1", name="ck_events_quantity_positive"),
        sa.CheckConstraint(
            "event_type IN ('view', 'add_to_cart', 'purchase')",
            name="ck_events_event_type_known",
        ),
        _user_fk("events"),
        sa.ForeignKeyConstraint(["item_id"], ["items.item_id"], name="fk_events_item_id_items"),
        sa.PrimaryKeyConstraint("event_id", name="pk_events"),
    )
    op.create_index("ix_events_user_id_event_time", "events", ["user_id", "event_time"])
    op.create_index("ix_events_item_id", "events", ["item_id"])

    op.create_table(
        "user_stats",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("purchase_count", sa.BigInteger(), nullable=False),
        sa.Column("last_event_time", UtcDateTime(), nullable=False),
        _user_fk("user_stats"),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_stats"),
    )

    op.create_table(
        "user_items",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("last_event_time", UtcDateTime(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("purchased_quantity", sa.BigInteger(), nullable=False),
        _user_fk("user_items"),
        sa.ForeignKeyConstraint(["item_id"], ["items.item_id"], name="fk_user_items_item_id_items"),
        sa.PrimaryKeyConstraint("user_id", "item_id", name="pk_user_items"),
    )
    op.create_index(
        "ix_user_items_user_id_last_event_time", "user_items", ["user_id", "last_event_time"]
    )

    op.create_table(
        "user_categories",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("category", sa.String(128), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("last_event_time", UtcDateTime(), nullable=False),
        _user_fk("user_categories"),
        sa.PrimaryKeyConstraint("user_id", "category", name="pk_user_categories"),
    )

    op.create_table(
        "popularity_releases",
        sa.Column("release_id", sa.String(128), nullable=False),
        sa.Column("applied_at", UtcDateTime(), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("release_id", name="pk_popularity_releases"),
    )


def downgrade() -> None:
    for table in (
        "popularity_releases",
        "user_categories",
        "user_items",
        "user_stats",
        "events",
        "users",
        "items",
    ):
        op.drop_table(table)
