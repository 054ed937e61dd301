"""The intervals of the online metrics against published values, and the attribution
migration on a database that already holds events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from services.feature_store import db
from services.feature_store.model import Event, ServedList
from services.feature_store.online_metrics import Rate, newcombe_difference, wilson_interval
from services.feature_store.store import FeatureStore
from shared.event_window import EventWindow


def test_wilson_interval_matches_newcombes_table() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
    # method 3 (Wilson score): 81/263 -> 0.2553-0.3662; 0/20 -> 0-0.1611; 1/29 -> 0.0061-0.1718.
    for (x, n), (low, high) in {
        (81, 263): (0.2553, 0.3662),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        got = wilson_interval(x, n)
        assert got == pytest.approx((low, high), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_difference_interval_matches_newcombes_method_10() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent
    # proportions", Table II, method 10: 56/70 - 48/80 -> 0.0524 to 0.3339; 9/10 - 3/10 ->
    # 0.1705 to 0.8090.
    d = newcombe_difference(Rate(56, 70), Rate(48, 80))
    assert d.difference == pytest.approx(0.2)
    assert (d.low, d.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    d = newcombe_difference(Rate(9, 10), Rate(3, 10))
    assert (d.low, d.high) == pytest.approx((0.1705, 0.8090), abs=1e-4)


def test_migration_0002_keeps_the_events_logged_before_it(db_url: str) -> None:
    """A database at 0001 with events upgrades in place: the old events read back with no
    attribution, and attributed events and served lists work after it."""
    engine = db.create_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    with engine.connect() as conn, conn.begin():
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    when = datetime(2026, 11, 30, 12, tzinfo=UTC)
    with engine.connect() as conn, conn.begin():
        conn.execute(
            sa.text(
                "INSERT INTO items (item_id, title, category_path, top_category, price, "
                "updated_at) VALUES ('A', 'a', '[\"home\"]', 'home', 1.0, :t)"
            ),
            {"t": when.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text("INSERT INTO users (user_id, created_at) VALUES ('p1', :t)"),
            {"t": when.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO events (event_id, user_id, item_id, event_type, event_time, "
                "quantity, category, ingested_at) VALUES ('old', 'p1', 'A', 'view', :t, 1, "
                "'home', :t)"
            ),
            {"t": when.replace(tzinfo=None)},
        )
    store = FeatureStore(engine)
    store.database.migrate()
    with engine.connect() as conn:
        assert db.current_revision(conn) == db.head_revision() == "0003_item_availability"
        old = conn.execute(
            sa.text("SELECT recommendation_id, position FROM events WHERE event_id = 'old'")
        ).one()
    assert tuple(old) == (None, None)
    store.online.record_served_lists([ServedList("rec-1", when, "dpp", 2, (("e", "a"),))])
    store.ingest.ingest_events([Event("new", "p1", "A", "view", when, 1, "rec-1", 2)])
    report = store.online.online_metrics(
        EventWindow(when - timedelta(hours=1), when + timedelta(hours=1))
    )
    assert [(r.key, r.rate("clicks").count) for r in report.by_position] == [("1", 0), ("2", 1)]
    assert report.unmatched_events == 0
    store.rebuild_user_features()  # the old row was written without its derived features
    assert store.queries.get_user_features("p1", 5).event_count == 2
    store.close()
