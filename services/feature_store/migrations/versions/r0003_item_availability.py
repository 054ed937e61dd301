"""Item availability: a catalog item can be withdrawn (out of stock, retired) without deleting it.

Revision ID: 0003_item_availability
Revises: 0002_attribution
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_item_availability"
down_revision: str | None = "0002_attribution"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing item stays recommendable: the server default fills the column. A plain
    # ADD COLUMN, not a batch copy of the table: SQLite can add a NOT NULL column with a
    # default in place, and copying `items` would break the events' foreign keys to it.
    op.add_column(
        "items", sa.Column("available", sa.Boolean(), server_default=sa.true(), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("items", "available")
