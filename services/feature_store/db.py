"""Engines, transactions and migrations: one place that knows the SQLite and PostgreSQL
differences, shared by the query, ingest and admin roles.

SQLite runs in WAL mode with ``synchronous=FULL`` so a committed transaction survives power
loss (WAL with NORMAL may lose the last commits), foreign keys on, and SQLAlchemy emitting
BEGIN itself: pysqlite's legacy mode does not BEGIN before SELECT, which breaks snapshot reads,
and write transactions use BEGIN IMMEDIATE so two writers queue on the busy timeout instead of
failing when a read lock cannot be upgraded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql, sqlite

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
WRITE = "feature_store_write"
# Arbitrary constant key: replicas starting together take turns applying migrations.
_MIGRATION_LOCK_KEY = 0x5EA7F00D
# Rows per statement: SQLite allows 32766 bound parameters and the events table has 8 columns.
CHUNK = 500


def chunks(seq: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``seq`` in slices small enough for one statement's bound parameters."""
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    busy_timeout_ms: int = 10_000,
    connect_timeout_s: int = 5,
) -> sa.Engine:
    """An engine for ``url`` with the durability and concurrency settings above."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed, pool_size, busy_timeout_ms)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = connect_timeout_s
    # pre_ping: after a database restart, the pool hands out working connections again.
    engine = sa.create_engine(
        url, pool_size=pool_size, pool_pre_ping=True, connect_args=connect_args
    )
    if parsed.get_backend_name() == "postgresql":

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # An acknowledged event must survive a crash even where a DBA turned
            # synchronous_commit off for the database or role.
            cursor = dbapi_connection.cursor()
            cursor.execute("SET synchronous_commit TO on")
            cursor.close()
            dbapi_connection.commit()

    return engine


def _sqlite_engine(url: str, parsed: sa.URL, pool_size: int, busy_timeout_ms: int) -> sa.Engine:
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, pool_size=pool_size)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest migration revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations found")
    return head


def current_revision(conn: sa.Connection) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine) -> None:
    """Apply pending migrations (``alembic upgrade head``) in one transaction."""
    cfg = _config()
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


class Database:
    """One engine and the transactions the feature store's roles run in.

    Thread-safe: the roles are called from a bounded executor and each call takes its own
    pooled connection.
    """

    def __init__(self, engine: sa.Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database backend {engine.dialect.name!r}")
        self.engine = engine
        # Both dialects spell upserts the same way (ON CONFLICT), but through their own insert.
        self.insert: Callable[[sa.Table], Any] = (
            postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._migrated = False

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 5) -> Database:
        return cls(create_engine(url, pool_size=pool_size))

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction, committed when the block exits without an exception."""
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def snapshot(self) -> Iterator[sa.Connection]:
        """A read transaction whose statements all see one snapshot."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def read(self) -> sa.Connection:
        """A connection for a single read statement (no snapshot needed)."""
        return self.engine.connect()

    def migrate(self) -> None:
        """Apply pending Alembic migrations (``upgrade head``)."""
        upgrade(self.engine)

    def is_ready(self) -> bool:
        """True when the database answers and is at the newest migration."""
        try:
            with self.engine.connect() as conn:
                return current_revision(conn) == head_revision()
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
