"""Attribution: recommendation id and position on events, served lists and their variants.

Revision ID: 0002_attribution
Revises: 0001
Create Date: 2026-12-01

Additive only: two nullable columns on ``events`` (old rows and events without attribution
keep NULL) and two new tables, so it runs on a live database without rewriting the log.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.feature_store.schema import UtcDateTime

revision: str = "0002_attribution"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("recommendation_id", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("position", sa.Integer(), nullable=True))
    op.create_index("ix_events_recommendation_id", "events", ["recommendation_id"])

    op.create_table(
        "served_lists",
        sa.Column("recommendation_id", sa.String(64), nullable=False),
        sa.Column("served_at", UtcDateTime(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("recommendation_id", name="pk_served_lists"),
    )
    op.create_index("ix_served_lists_served_at", "served_lists", ["served_at"])

    op.create_table(
        "served_list_assignments",
        sa.Column("recommendation_id", sa.String(64), nullable=False),
        sa.Column("experiment", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["served_lists.recommendation_id"],
            name="fk_served_list_assignments_recommendation_id_served_lists",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "recommendation_id", "experiment", name="pk_served_list_assignments"
        ),
    )
    op.create_index(
        "ix_served_list_assignments_experiment_variant",
        "served_list_assignments",
        ["experiment", "variant"],
    )


def downgrade() -> None:
    op.drop_table("served_list_assignments")
    op.drop_table("served_lists")
    op.drop_index("ix_events_recommendation_id", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("position")
        batch.drop_column("recommendation_id")
