"""Item availability in the feature store: the column the migration adds, the write, and the
reads that must leave withdrawn items out (both backends)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.feature_store import db
from services.feature_store.store import FeatureStore, Item
from shared.errors import InvalidArgument

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _catalog(n: int = 6) -> list[Item]:
    return [Item(f"I{i:03d}", f"item {i}", ("home", "mugs"), 1.0 + i) for i in range(n)]


@pytest.fixture
def store(db_url: str) -> Iterator[FeatureStore]:
    fs = FeatureStore.from_url(db_url, clock=lambda: NOW)
    fs.migrate()
    fs.load_catalog(_catalog())
    yield fs
    fs.close()


def _available(fs: FeatureStore, ids: list[str]) -> dict[str, bool | None]:
    return {it.item_id: it.available for it in fs.get_item_features(ids).items}


def test_new_items_are_available_and_a_withdrawal_leaves_every_read(store: FeatureStore) -> None:
    ids = [f"I{i:03d}" for i in range(6)]
    assert set(_available(store, ids).values()) == {True}
    store.set_item_popularity("r1", [(i, float(10 - n)) for n, i in enumerate(ids)])
    assert [it.item_id for it in store.get_popular_items(3).items] == ids[:3]

    result = store.set_item_availability(["I000", "NOPE", "I002"], False)
    assert (result.updated, result.missing_item_ids) == (2, ["NOPE"])
    # Still in the catalog, flagged, so the orchestrator can drop it from any list.
    assert _available(store, ["I000", "I001", "I002"]) == {
        "I000": False,
        "I001": True,
        "I002": False,
    }
    assert [it.item_id for it in store.get_popular_items(3).items] == ["I001", "I003", "I004"]

    store.set_item_availability(["I000"], True)
    assert [it.item_id for it in store.get_popular_items(2).items] == ["I000", "I001"]


def test_a_catalog_load_changes_availability_only_when_it_states_it(store: FeatureStore) -> None:
    store.set_item_availability(["I001"], False)
    # A re-load without the flag (a re-seed, a title fix) keeps the withdrawal.
    store.load_catalog([dataclasses.replace(_catalog()[1], title="renamed")])
    assert _available(store, ["I001"]) == {"I001": False}
    assert store.get_item_features(["I001"]).items[0].title == "renamed"
    # Stating it writes it, for new and existing items in the same load.
    result = store.load_catalog(
        [
            dataclasses.replace(_catalog()[1], available=True),
            Item("NEW1", "a new mug", ("home", "mugs"), 3.0, available=False),
            Item("NEW2", "another mug", ("home", "mugs"), 3.0),
        ]
    )
    assert (result.inserted, result.updated) == (2, 1)
    assert _available(store, ["I001", "NEW1", "NEW2"]) == {
        "I001": True,
        "NEW1": False,
        "NEW2": True,
    }


@pytest.mark.parametrize(
    ("ids", "message"),
    [([], "must not be empty"), (["I000", "I000"], r"item_ids\[1\] repeats"), ([""], "empty")],
)
def test_bad_availability_requests_are_rejected(
    store: FeatureStore, ids: list[str], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        store.set_item_availability(ids, False)


def test_the_migration_keeps_existing_items_available(tmp_path: object) -> None:
    """A store created at revision 0001 with items gets the column filled with true."""
    from alembic import command

    url = f"sqlite:///{tmp_path}/old.sqlite"
    engine = sa.create_engine(url)
    cfg = db._config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            sa.text(
                "insert into items (item_id, title, category_path, top_category, price, "
                "updated_at) values ('OLD', 't', '[\"home\"]', 'home', 1.0, '2026-01-01')"
            )
        )
    engine.dispose()
    fs = FeatureStore.from_url(url, clock=lambda: NOW)
    fs.migrate()
    assert _available(fs, ["OLD"]) == {"OLD": True}
    fs.close()
