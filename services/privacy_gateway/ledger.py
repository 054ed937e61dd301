"""The privacy-budget ledger: every differentially private release, persisted with SQLAlchemy.

Each release declares the event-time window ``[start, end)`` it covers (none: every event).
Releases whose windows overlap compose sequentially (Dwork & Roth 2014, "The Algorithmic
Foundations of Differential Privacy", Thm. 3.16: their epsilons and deltas add up); releases
over disjoint windows read disjoint parts of every person's events and compose in parallel
(McSherry 2009, "Privacy Integrated Queries", Thm. 4: the loss is the largest of them, not
the sum). So a new release is admitted when it and every recorded release whose window
overlaps its own fit the budget of one window; otherwise FAILED_PRECONDITION. Every instant
of event time is then covered by releases spending at most the budget: the latest of them
to be admitted overlapped all the others and was checked against their sum.

Releases serialise on the scope's row of ``privacy_budget_spend``: the transaction that
checks and records a release first updates that row, so PostgreSQL holds its row lock and
SQLite its write lock until the release row is committed, and a concurrent release reads the
overlapping spend only after it. Two releases can therefore never both pass a check that only
one of them fits. The row also keeps the lifetime sums over all windows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from shared.errors import FailedPrecondition
from shared.event_window import EventWindow

_SCOPE = "global"

metadata = sa.MetaData()

budget_spend = sa.Table(
    "privacy_budget_spend",
    metadata,
    sa.Column("scope", sa.String(32), primary_key=True),
    sa.Column("epsilon_spent", sa.Double, nullable=False),
    sa.Column("delta_spent", sa.Double, nullable=False),
)

releases = sa.Table(
    "privacy_releases",
    metadata,
    sa.Column("release_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("mechanism", sa.String(16), nullable=False),
    sa.Column("epsilon", sa.Double, nullable=False),
    sa.Column("delta", sa.Double, nullable=False),
    sa.Column("max_contributions", sa.Integer, nullable=False),
    sa.Column("purpose", sa.String(200), nullable=False),
    sa.Column("released_at", sa.DateTime(timezone=True), nullable=False, index=True),
    # The event-time window [start, end) the release covered; both NULL: every event (also
    # what releases recorded before windows existed get, which is the safe reading).
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
)
_WINDOW_COLUMNS = ("window_start", "window_end")


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_release_id() -> str:
    return str(uuid.uuid4())


def create_ledger_engine(url: str) -> sa.Engine:
    """An engine for ``url``; plain ``postgresql://`` uses psycopg 3, and the folder of an
    SQLite file is created."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    database = parsed.database
    if parsed.drivername.startswith("sqlite") and database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed, pool_pre_ping=True)


@dataclass(frozen=True)
class Release:
    """One recorded release."""

    release_id: str
    kind: str
    mechanism: str
    epsilon: float
    delta: float
    max_contributions: int
    purpose: str
    released_at: datetime
    window: EventWindow | None = None


@dataclass(frozen=True)
class BudgetState:
    """The budget of one window and what the releases overlapping ``window`` spent of it
    (every release when ``window`` is None)."""

    epsilon_total: float
    epsilon_spent: float
    delta_total: float
    delta_spent: float
    entries: list[Release]
    window: EventWindow | None = None

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_total - self.epsilon_spent)

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.delta_total - self.delta_spent)


class Ledger:
    """Budget totals come from configuration; the spend and the releases live in the database."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        epsilon_total: float,
        delta_total: float,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_release_id,
    ) -> None:
        if epsilon_total <= 0 or not 0 <= delta_total < 1:
            raise ValueError("epsilon_total must be > 0 and delta_total in [0, 1)")
        self.engine = engine
        self.epsilon_total = epsilon_total
        self.delta_total = delta_total
        self._clock = clock
        self._new_id = new_id
        # Float sums of many small epsilons drift by a few ulps; never refuse for that.
        self._eps_slack = 1e-9 * max(1.0, epsilon_total)
        self._delta_slack = 1e-12

    def create_schema(self) -> None:
        """Create the ledger's own tables and its spend row if they do not exist."""
        metadata.create_all(self.engine)
        present = {c["name"] for c in sa.inspect(self.engine).get_columns(releases.name)}
        with self.engine.begin() as conn:
            # A ledger from before windows existed: add the columns; its releases read as
            # covering every event.
            for name in _WINDOW_COLUMNS:
                if name not in present:
                    type_ = releases.c[name].type.compile(dialect=conn.dialect)
                    # Two replicas may upgrade at once; PostgreSQL can say so, SQLite
                    # serialises the two on its write lock.
                    guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
                    conn.execute(
                        sa.text(f"ALTER TABLE {releases.name} ADD COLUMN {guard}{name} {type_}")
                    )
            exists = conn.execute(
                sa.select(budget_spend.c.scope).where(budget_spend.c.scope == _SCOPE)
            ).first()
            if exists is None:
                conn.execute(
                    budget_spend.insert().values(scope=_SCOPE, epsilon_spent=0.0, delta_spent=0.0)
                )

    def ping(self) -> None:
        """Raise if the database or the ledger tables cannot be read (readiness check)."""
        with self.engine.connect() as conn:
            conn.execute(sa.select(budget_spend.c.scope).limit(1)).all()

    def _spent(self, conn: sa.Connection, window: EventWindow | None) -> tuple[float, float]:
        """Epsilon and delta of the recorded releases whose windows overlap ``window``."""
        query = sa.select(
            sa.func.coalesce(sa.func.sum(releases.c.epsilon), 0.0),
            sa.func.coalesce(sa.func.sum(releases.c.delta), 0.0),
        )
        row = conn.execute(query.where(*_overlapping(window))).one()
        return float(row[0]), float(row[1])

    def _refuse(
        self, epsilon: float, delta: float, window: EventWindow | None, spent: tuple[float, float]
    ) -> None:
        eps_left = max(0.0, self.epsilon_total - spent[0])
        delta_left = max(0.0, self.delta_total - spent[1])
        scope = "every event" if window is None else f"the window {window}"
        raise FailedPrecondition(
            f"privacy budget exhausted for {scope}: the release needs epsilon={epsilon:g}, "
            f"delta={delta:g} but the releases overlapping it leave only epsilon={eps_left:g}, "
            f"delta={delta_left:g}"
        )

    def _fits(self, epsilon: float, delta: float, spent: tuple[float, float]) -> bool:
        return (
            spent[0] + epsilon <= self.epsilon_total + self._eps_slack
            and spent[1] + delta <= self.delta_total + self._delta_slack
        )

    def ensure_available(
        self, epsilon: float, delta: float, window: EventWindow | None = None
    ) -> None:
        """Refuse early, before any data is read, when the release cannot fit; the binding
        check is the one in ``charge``."""
        with self.engine.connect() as conn:
            spent = self._spent(conn, window)
        if not self._fits(epsilon, delta, spent):
            self._refuse(epsilon, delta, window, spent)

    def charge(
        self,
        *,
        kind: str,
        mechanism: str,
        epsilon: float,
        delta: float,
        max_contributions: int,
        purpose: str,
        window: EventWindow | None = None,
    ) -> tuple[Release, BudgetState]:
        """Record a release over ``window`` (None: every event) and spend its budget
        atomically, or raise FailedPrecondition. The returned state is the spend of the
        releases overlapping ``window``, this one included."""
        if epsilon <= 0 or delta < 0:
            raise ValueError("a release spends epsilon > 0 and delta >= 0")
        release = Release(
            self._new_id(),
            kind,
            mechanism,
            epsilon,
            delta,
            max_contributions,
            purpose,
            self._clock(),
            window,
        )
        with self.engine.begin() as conn:
            # The lock first: every release takes the scope row before it reads the spend, so
            # releases are checked one after another (module docstring). A refusal below
            # raises and rolls this back.
            e, d = budget_spend.c.epsilon_spent, budget_spend.c.delta_spent
            locked = conn.execute(
                budget_spend.update()
                .where(budget_spend.c.scope == _SCOPE)
                .values(epsilon_spent=e + epsilon, delta_spent=d + delta)
            )
            if locked.rowcount != 1:
                raise RuntimeError("the ledger schema is missing its spend row")
            spent = self._spent(conn, window)
            if not self._fits(epsilon, delta, spent):
                self._refuse(epsilon, delta, window, spent)
            row = {k: v for k, v in release.__dict__.items() if k != "window"}
            row["window_start"] = None if window is None else _bind(window.start)
            row["window_end"] = None if window is None else _bind(window.end)
            conn.execute(releases.insert().values(**row))
        after = (spent[0] + epsilon, spent[1] + delta)
        state = BudgetState(self.epsilon_total, after[0], self.delta_total, after[1], [], window)
        return release, state

    def state(self, window: EventWindow | None = None, limit: int = 1000) -> BudgetState:
        """The spend of the releases overlapping ``window`` (all when None) and the ``limit``
        newest of them, newest first."""
        with self.engine.connect() as conn:
            spent = self._spent(conn, window)
            query = sa.select(releases).where(*_overlapping(window))
            rows = conn.execute(
                query.order_by(releases.c.released_at.desc(), releases.c.release_id).limit(limit)
            ).all()
        entries = [
            Release(
                r.release_id,
                r.kind,
                r.mechanism,
                float(r.epsilon),
                float(r.delta),
                int(r.max_contributions),
                r.purpose,
                _aware(r.released_at),
                None
                if r.window_start is None or r.window_end is None
                else EventWindow(_aware(r.window_start), _aware(r.window_end)),
            )
            for r in rows
        ]
        return BudgetState(
            self.epsilon_total, spent[0], self.delta_total, spent[1], entries, window
        )

    def close(self) -> None:
        self.engine.dispose()


def _overlapping(window: EventWindow | None) -> list[sa.ColumnElement[bool]]:
    """Conditions on ``privacy_releases`` for a recorded window overlapping ``window``:
    [s, e) and [s', e') share an instant iff s < e' and s' < e; NULL ends are unbounded,
    and no window overlaps every release."""
    if window is None:
        return []
    return [
        sa.or_(releases.c.window_end.is_(None), releases.c.window_end > _bind(window.start)),
        sa.or_(releases.c.window_start.is_(None), releases.c.window_start < _bind(window.end)),
    ]


def _bind(value: datetime) -> datetime:
    """UTC for the database: SQLite stores the wall time without its offset, so every stored
    and compared instant must be in one zone for the text order to be the time order."""
    return value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
