"""Alembic environment: migrations run on a connection handed over by
``services.feature_store.db.upgrade`` (never from alembic.ini), so the service, the seed job and
the tests all migrate the same way."""

from __future__ import annotations

from alembic import context

from services.feature_store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through services.feature_store.db.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most constraints; batch mode recreates tables when a later
    # migration needs it.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
