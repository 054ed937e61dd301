"""The privacy-budget ledger: every differentially private release, persisted with SQLAlchemy.

Composition is basic sequential composition (Dwork & Roth 2014, "The Algorithmic Foundations
of Differential Privacy", Thm. 3.16): the epsilons and deltas of all releases add up, and a
release that would take either sum past its total is refused with FAILED_PRECONDITION.

The check and the spend are one conditional ``UPDATE ... WHERE spent + request <= total`` in
the same transaction that inserts the release row, so two concurrent releases can never both
pass a check that only one of them fits: PostgreSQL re-evaluates the condition on the locked
row, SQLite serialises writers on the database lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from shared.errors import FailedPrecondition

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
)


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


@dataclass(frozen=True)
class BudgetState:
    epsilon_total: float
    epsilon_spent: float
    delta_total: float
    delta_spent: float
    entries: list[Release]

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
        with self.engine.begin() as conn:
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

    def _spent(self, conn: sa.Connection) -> tuple[float, float]:
        row = conn.execute(
            sa.select(budget_spend.c.epsilon_spent, budget_spend.c.delta_spent).where(
                budget_spend.c.scope == _SCOPE
            )
        ).one()
        return float(row.epsilon_spent), float(row.delta_spent)

    def _refuse(self, epsilon: float, delta: float, spent: tuple[float, float]) -> None:
        eps_left = max(0.0, self.epsilon_total - spent[0])
        delta_left = max(0.0, self.delta_total - spent[1])
        raise FailedPrecondition(
            f"privacy budget exhausted: the release needs epsilon={epsilon:g}, delta={delta:g} "
            f"but only epsilon={eps_left:g}, delta={delta_left:g} remain"
        )

    def _fits(self, epsilon: float, delta: float, spent: tuple[float, float]) -> bool:
        return (
            spent[0] + epsilon <= self.epsilon_total + self._eps_slack
            and spent[1] + delta <= self.delta_total + self._delta_slack
        )

    def ensure_available(self, epsilon: float, delta: float) -> None:
        """Refuse early, before any data is read, when the release cannot fit; the binding
        check is the one in ``charge``."""
        with self.engine.connect() as conn:
            spent = self._spent(conn)
        if not self._fits(epsilon, delta, spent):
            self._refuse(epsilon, delta, spent)

    def charge(
        self,
        *,
        kind: str,
        mechanism: str,
        epsilon: float,
        delta: float,
        max_contributions: int,
        purpose: str,
    ) -> tuple[Release, BudgetState]:
        """Record a release and spend its budget atomically, or raise FailedPrecondition."""
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
        )
        with self.engine.begin() as conn:
            e, d = budget_spend.c.epsilon_spent, budget_spend.c.delta_spent
            updated = conn.execute(
                budget_spend.update()
                .where(
                    budget_spend.c.scope == _SCOPE,
                    e + epsilon <= self.epsilon_total + self._eps_slack,
                    d + delta <= self.delta_total + self._delta_slack,
                )
                .values(epsilon_spent=e + epsilon, delta_spent=d + delta)
            )
            if updated.rowcount != 1:
                self._refuse(epsilon, delta, self._spent(conn))
            conn.execute(releases.insert().values(**release.__dict__))
            spent = self._spent(conn)
        return release, BudgetState(self.epsilon_total, spent[0], self.delta_total, spent[1], [])

    def state(self, limit: int = 1000) -> BudgetState:
        """Totals, spend, and the ``limit`` newest releases, newest first."""
        with self.engine.connect() as conn:
            spent = self._spent(conn)
            rows = conn.execute(
                sa.select(releases)
                .order_by(releases.c.released_at.desc(), releases.c.release_id)
                .limit(limit)
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
                r.released_at if r.released_at.tzinfo else r.released_at.replace(tzinfo=UTC),
            )
            for r in rows
        ]
        return BudgetState(self.epsilon_total, spent[0], self.delta_total, spent[1], entries)

    def close(self) -> None:
        self.engine.dispose()
