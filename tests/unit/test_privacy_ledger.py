"""The privacy-budget ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.privacy_gateway.ledger import Ledger, create_ledger_engine, releases
from shared.errors import FailedPrecondition

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _ledger(url: str, epsilon: float = 1.0, delta: float = 1e-6) -> Ledger:
    ticks = itertools.count()
    ledger = Ledger(
        create_ledger_engine(url),
        epsilon_total=epsilon,
        delta_total=delta,
        clock=lambda: T0 + timedelta(seconds=next(ticks)),
    )
    ledger.create_schema()
    return ledger


def _charge(ledger: Ledger, epsilon: float, delta: float = 0.0, purpose: str = "test"):  # type: ignore[no-untyped-def]
    return ledger.charge(
        kind="item_popularity",
        mechanism="laplace" if delta == 0 else "gaussian",
        epsilon=epsilon,
        delta=delta,
        max_contributions=5,
        purpose=purpose,
    )


def test_releases_are_recorded_and_composed_sequentially(db_url: str) -> None:
    ledger = _ledger(db_url)
    first, after_first = _charge(ledger, 0.25, purpose="popularity-fallback")
    second, after_second = _charge(ledger, 0.5, 5e-7, purpose="category-trend")
    assert first.release_id != second.release_id
    assert after_first.epsilon_remaining == pytest.approx(0.75)
    assert after_second.epsilon_remaining == pytest.approx(0.25)
    assert after_second.delta_remaining == pytest.approx(5e-7)
    state = ledger.state()
    assert state.epsilon_spent == pytest.approx(0.75)
    assert [e.release_id for e in state.entries] == [second.release_id, first.release_id]
    assert state.entries[1].purpose == "popularity-fallback"
    assert state.entries[1].released_at == T0
    assert state.entries[0].mechanism == "gaussian"
    ledger.close()
    # The spend survives a restart: a new ledger on the same database sees it.
    reopened = _ledger(db_url)
    assert reopened.state().epsilon_spent == pytest.approx(0.75)
    reopened.close()


def test_a_release_past_the_budget_is_refused_and_not_recorded(db_url: str) -> None:
    ledger = _ledger(db_url, epsilon=1.0, delta=1e-6)
    _charge(ledger, 0.6)
    with pytest.raises(FailedPrecondition, match="privacy budget exhausted"):
        _charge(ledger, 0.5)
    with pytest.raises(FailedPrecondition, match="privacy budget exhausted"):
        ledger.ensure_available(0.5, 0.0)
    with pytest.raises(FailedPrecondition, match="delta"):
        _charge(ledger, 0.1, 2e-6)
    state = ledger.state()
    assert len(state.entries) == 1
    assert state.epsilon_spent == pytest.approx(0.6)
    assert state.delta_spent == 0.0
    # Exactly what is left still fits, despite float rounding in the running sum.
    for _ in range(4):
        _charge(ledger, 0.1)
    assert ledger.state().epsilon_remaining == pytest.approx(0.0, abs=1e-9)
    ledger.close()


def test_concurrent_releases_never_overspend(db_url: str) -> None:
    ledger = _ledger(db_url, epsilon=2.0)

    def attempt(_: int) -> bool:
        try:
            _charge(ledger, 0.25)
        except FailedPrecondition:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    assert sum(outcomes) == 8
    state = ledger.state()
    assert state.epsilon_spent == pytest.approx(2.0)
    with ledger.engine.connect() as conn:
        recorded = conn.execute(sa.select(sa.func.count()).select_from(releases)).scalar_one()
    assert recorded == 8
    ledger.close()


def test_ping_fails_without_the_schema_and_bad_totals_are_rejected(db_url: str) -> None:
    engine = create_ledger_engine(db_url)
    ledger = Ledger(engine, epsilon_total=1.0, delta_total=0.0)
    with pytest.raises(sa.exc.SQLAlchemyError):
        ledger.ping()
    ledger.create_schema()
    ledger.create_schema()  # idempotent
    ledger.ping()
    with pytest.raises(ValueError, match="a release spends"):
        _charge(ledger, 0.0)
    with pytest.raises(ValueError, match="epsilon_total"):
        Ledger(engine, epsilon_total=0.0, delta_total=0.0)
    engine.dispose()
