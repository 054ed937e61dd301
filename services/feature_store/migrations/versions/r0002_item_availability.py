"""Item availability: a catalog item can be withdrawn (out of stock, retired) without deleting it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing item stays recommendable: the server default fills the column.
    with op.batch_alter_table("items") as batch:
        batch.add_column(
            sa.Column("available", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("available")
