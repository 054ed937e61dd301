"""The privacy-budget ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.privacy_gateway.ledger import Ledger, create_ledger_engine, releases
from shared.errors import FailedPrecondition
from shared.event_window import EventWindow

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


def _charge(  # type: ignore[no-untyped-def]
    ledger: Ledger,
    epsilon: float,
    delta: float = 0.0,
    purpose: str = "test",
    window: EventWindow | None = None,
):
    return ledger.charge(
        kind="item_popularity",
        mechanism="laplace" if delta == 0 else "gaussian",
        epsilon=epsilon,
        delta=delta,
        max_contributions=5,
        purpose=purpose,
        window=window,
    )


DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


def _days(first: int, last: int) -> EventWindow:
    """The UTC days ``first`` to ``last`` (inclusive) after DAY0 as one window."""
    return EventWindow(DAY0 + timedelta(days=first), DAY0 + timedelta(days=last + 1))


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


def test_disjoint_windows_each_have_the_whole_budget(db_url: str) -> None:
    """Parallel composition: a daily release per day never runs out, however many days."""
    ledger = _ledger(db_url, epsilon=1.0, delta=1e-6)
    for day in range(30):
        _, after = _charge(ledger, 1.0, window=_days(day, day))
        assert after.epsilon_remaining == pytest.approx(0.0, abs=1e-9)
        assert after.window == _days(day, day)
    # Adjacent half-open windows share no instant: [d, d+1) and [d+1, d+2) are disjoint.
    assert not _days(0, 0).overlaps(_days(1, 1))
    assert ledger.state(_days(3, 3)).epsilon_spent == pytest.approx(1.0)
    assert ledger.state().epsilon_spent == pytest.approx(30.0)  # lifetime, over all windows
    ledger.close()


def test_overlapping_windows_share_one_budget(db_url: str) -> None:
    ledger = _ledger(db_url, epsilon=1.0, delta=1e-6)
    _charge(ledger, 0.5, window=_days(0, 0))
    _charge(ledger, 0.25, window=_days(1, 1))
    # A week that covers day 0 and day 1 sees both; either alone fits under 1, both with
    # this one do not: 0.5 + 0.25 + 0.3 > 1.
    with pytest.raises(FailedPrecondition, match="privacy budget exhausted for the window"):
        _charge(ledger, 0.3, window=_days(0, 6))
    with pytest.raises(FailedPrecondition, match="privacy budget exhausted"):
        ledger.ensure_available(0.3, 0.0, _days(0, 6))
    _, after = _charge(ledger, 0.25, window=_days(0, 6))
    assert after.epsilon_spent == pytest.approx(1.0)
    # Day 0 is now full (0.5 + 0.25 of the week); day 1 is full too (0.25 + 0.25 + ...).
    with pytest.raises(FailedPrecondition):
        _charge(ledger, 0.3, window=_days(0, 0))
    # A day outside the week is untouched.
    _, later = _charge(ledger, 1.0, window=_days(7, 7))
    assert later.epsilon_spent == pytest.approx(1.0)
    # A window that only shares its end instant with the week is disjoint from it.
    week = ledger.state(_days(0, 6))
    assert week.epsilon_spent == pytest.approx(1.0)
    assert {e.window for e in week.entries} == {_days(0, 0), _days(1, 1), _days(0, 6)}
    assert len(ledger.state().entries) == 4
    ledger.close()


def test_a_release_without_a_window_overlaps_every_window(db_url: str) -> None:
    ledger = _ledger(db_url, epsilon=1.0, delta=1e-6)
    _charge(ledger, 0.4, window=_days(0, 0))
    _charge(ledger, 0.4, window=_days(5, 5))
    # Every event: both days' releases count against it (0.4 + 0.4 + 0.7 > 1).
    with pytest.raises(FailedPrecondition, match="for every event"):
        _charge(ledger, 0.7)
    unbounded, _ = _charge(ledger, 0.2)
    # And it counts against every window, even one no release has covered yet.
    with pytest.raises(FailedPrecondition):
        _charge(ledger, 0.9, window=_days(100, 100))
    _, after = _charge(ledger, 0.8, window=_days(100, 100))
    assert after.epsilon_remaining == pytest.approx(0.0, abs=1e-9)
    assert ledger.state(_days(0, 0)).epsilon_spent == pytest.approx(0.6)
    entry = next(e for e in ledger.state().entries if e.release_id == unbounded.release_id)
    assert entry.window is None
    ledger.close()


def test_windows_survive_a_restart_and_an_old_ledger_is_upgraded(db_url: str) -> None:
    """A ledger written before windows existed gets the columns, and its releases count as
    covering every event."""
    engine = create_ledger_engine(db_url)
    old = sa.MetaData()
    sa.Table(
        "privacy_budget_spend",
        old,
        sa.Column("scope", sa.String(32), primary_key=True),
        sa.Column("epsilon_spent", sa.Double, nullable=False),
        sa.Column("delta_spent", sa.Double, nullable=False),
    )
    old_releases = sa.Table(
        "privacy_releases",
        old,
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key)
            for c in releases.columns
            if not c.name.startswith("window_")
        ),
    )
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO privacy_budget_spend VALUES ('global', 0.5, 0.0)"))
        conn.execute(
            old_releases.insert().values(
                release_id="old",
                kind="item_popularity",
                mechanism="laplace",
                epsilon=0.5,
                delta=0.0,
                max_contributions=5,
                purpose="before windows",
                released_at=T0,
            )
        )
    engine.dispose()
    ledger = _ledger(db_url, epsilon=1.0)
    with pytest.raises(FailedPrecondition):
        _charge(ledger, 0.6, window=_days(0, 0))
    first, _ = _charge(ledger, 0.5, window=_days(0, 0))
    ledger.close()
    reopened = _ledger(db_url, epsilon=1.0)
    entries = {e.release_id: e.window for e in reopened.state().entries}
    assert entries == {"old": None, first.release_id: _days(0, 0)}
    reopened.close()


def test_concurrent_overlapping_releases_never_overspend_a_window(db_url: str) -> None:
    """Releases over three overlapping windows and one disjoint day race each other: every
    instant's spend stays within the budget, and the disjoint day fills on its own."""
    ledger = _ledger(db_url, epsilon=1.0)
    windows = [_days(0, 1), _days(1, 2), _days(1, 1), _days(10, 10)]

    def attempt(i: int) -> EventWindow | None:
        window = windows[i % len(windows)]
        try:
            _charge(ledger, 0.25, window=window)
        except FailedPrecondition:
            return None
        return window

    with ThreadPoolExecutor(8) as pool:
        admitted = [w for w in pool.map(attempt, range(32)) if w is not None]
    # Day 1 lies in the first three windows: at most four quarter releases among them all.
    assert sum(1 for w in admitted if w.overlaps(_days(1, 1))) == 4
    assert admitted.count(_days(10, 10)) == 4
    state = ledger.state()
    for entry in state.entries:
        assert entry.window is not None
        assert ledger.state(entry.window).epsilon_spent <= 1.0 + 1e-9
    for day in range(12):
        assert ledger.state(_days(day, day)).epsilon_spent <= 1.0 + 1e-9
    ledger.close()
