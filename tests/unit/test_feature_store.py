"""FeatureStore domain tests, each run on an SQLite file AND a fresh PostgreSQL schema."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.feature_store import db
from services.feature_store.schema import metadata
from services.feature_store.store import (
    AggregateKind,
    Event,
    FeatureStore,
    Item,
)
from shared.data import synthetic
from shared.errors import FailedPrecondition, InvalidArgument
from shared.event_window import EventWindow
from shared.keyring import KeyRing

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)
CATEGORIES = ("home", "toys", "grocery")


def _catalog(n: int = 12) -> list[Item]:
    return [
        Item(
            item_id=f"I{i:03d}",
            title=f"item number {i}",
            category_path=(CATEGORIES[i % 3], f"sub{i % 2}"),
            price=1.0 + i,
            embedding_version="emb-1",
        )
        for i in range(n)
    ]


def _event(
    n: int,
    user: str = "v1.u1",
    item: str = "I000",
    kind: str = "view",
    minutes: int = 0,
    quantity: int = 1,
) -> Event:
    return Event(f"e{n}", user, item, kind, T0 + timedelta(minutes=minutes), quantity)


@pytest.fixture
def store(db_url: str) -> Iterator[FeatureStore]:
    fs = FeatureStore.from_url(db_url, clock=lambda: NOW)
    fs.migrate()
    fs.load_catalog(_catalog())
    yield fs
    fs.close()


def _derived(fs: FeatureStore) -> list[list[tuple[object, ...]]]:
    with fs.engine.connect() as conn:
        return [
            [tuple(r) for r in conn.execute(sa.text(f"select * from {t} order by 1, 2"))]
            for t in ("user_stats", "user_items", "user_categories")
        ]


# ---- schema and migrations -------------------------------------------------------------------


def test_migrations_match_metadata_and_are_idempotent(db_url: str) -> None:
    fs = FeatureStore.from_url(db_url)
    assert not fs.is_ready()  # empty database: not migrated
    fs.migrate()
    fs.migrate()
    assert fs.is_ready()
    with fs.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []
    fs.close()


def test_sqlite_runs_in_wal_with_full_sync(tmp_path: object) -> None:
    fs = FeatureStore.from_url(f"sqlite:///{tmp_path}/sub/dir/fs.sqlite")
    with fs.engine.connect() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("pragma foreign_keys").scalar() == 1
    fs.close()


def test_unsupported_backend_is_refused() -> None:
    engine = sa.create_mock_engine("mysql://", lambda *args, **kwargs: None)
    with pytest.raises(ValueError, match="unsupported database backend 'mysql'"):
        FeatureStore(engine)  # type: ignore[arg-type]


def test_check_ready_migrates_once(db_url: str) -> None:
    fs = FeatureStore.from_url(db_url)
    assert not fs.check_ready()
    assert fs.check_ready(migrate=True)
    with fs.engine.connect() as conn:
        assert db.current_revision(conn) == db.head_revision()
    fs.close()


# ---- catalog ---------------------------------------------------------------------------------


def test_load_catalog_upserts_and_counts(store: FeatureStore) -> None:
    changed = Item("I001", "renamed", ("toys", "new"), 9.5, "emb-2", dp_popularity=99.0)
    result = store.load_catalog([changed, Item("NEW", "new item", ("home",), 0.0)])
    assert (result.inserted, result.updated) == (1, 1)
    got = store.get_item_features(["I001", "NEW"]).items
    # dp_popularity is only ever set by a privacy release, never by a catalog load.
    assert got[0] == Item("I001", "renamed", ("toys", "new"), 9.5, "emb-2", 0.0, available=True)
    assert got[1].category_path == ("home",)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (Item("", "t", ("a",), 1.0), "items[1].item_id is empty"),
        (Item("x" * 65, "t", ("a",), 1.0), "items[1].item_id is longer than 64"),
        (Item("X", " ", ("a",), 1.0), "items[1].title is empty"),
        (Item("X", "t", (), 1.0), "items[1].category_path is empty"),
        (Item("X", "t", ("a", ""), 1.0), r"items\[1\].category_path\[1\] is empty"),
        (Item("X", "t", ("a",), -1.0), "items[1].price must be a finite number"),
        (Item("X", "t", ("a",), float("nan")), "items[1].price must be a finite number"),
        (Item("I000", "t", ("a",), 1.0), r"items\[1\].item_id repeats items\[0\]"),
    ],
)
def test_load_catalog_rejects_bad_items(store: FeatureStore, item: Item, message: str) -> None:
    first = Item("I000", "fine", ("a",), 1.0)
    with pytest.raises(InvalidArgument, match=message.replace("[1]", r"\[1\]")):
        store.load_catalog([first, item])
    # Nothing of the rejected batch was written.
    assert store.get_item_features(["I000"]).items[0].title == "item number 0"


# ---- item lookups ----------------------------------------------------------------------------


def test_item_features_keep_request_order_and_report_missing(store: FeatureStore) -> None:
    lookup = store.get_item_features(["I005", "nope", "I001", "I005", "gone"])
    assert [it.item_id for it in lookup.items] == ["I005", "I001", "I005"]
    assert lookup.missing_item_ids == ["nope", "gone"]
    assert lookup.items[0] == Item(
        "I005", "item number 5", ("grocery", "sub1"), 6.0, "emb-1", 0.0, available=True
    )
    assert store.get_item_features([]).items == []
    with pytest.raises(InvalidArgument, match=r"item_ids\[1\] is empty"):
        store.get_item_features(["I000", ""])


def test_batch_of_500_ids_is_exactly_one_select(store: FeatureStore) -> None:
    store.load_catalog([Item(f"B{i:04d}", f"bulk {i}", ("home",), 1.0) for i in range(450)])
    ids = [f"B{i:04d}" for i in range(450)] + [f"I{i:03d}" for i in range(12)]
    ids += [f"missing-{i}" for i in range(500 - len(ids))]
    random.Random(3).shuffle(ids)
    store.get_item_features(["I000"])  # warm the pool: first-connect queries are not ours
    statements: list[str] = []

    def record(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        lookup = store.get_item_features(ids)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    queries = [s for s in statements if not s.strip().upper().startswith("BEGIN")]
    assert len(queries) == 1, queries
    assert queries[0].lstrip().upper().startswith("SELECT")
    assert len(lookup.items) == 462
    assert [it.item_id for it in lookup.items] == [i for i in ids if not i.startswith("missing")]
    assert len(lookup.missing_item_ids) == 38


# ---- ingestion -------------------------------------------------------------------------------


def test_ingest_is_idempotent_by_event_id(store: FeatureStore) -> None:
    batch = [_event(1), _event(2, kind="purchase", quantity=2), _event(1)]
    first = store.ingest_events(batch)
    assert (first.accepted, first.duplicates) == (2, 1)
    features = store.get_user_features("v1.u1", 10)
    again = store.ingest_events(batch[:2])
    assert (again.accepted, again.duplicates) == (0, 2)
    # A known id is acknowledged without change, even when the rest of the event differs.
    changed = store.ingest_events([_event(1, item="I003", kind="purchase")])
    assert (changed.accepted, changed.duplicates) == (0, 1)
    assert store.get_user_features("v1.u1", 10) == features
    assert features.event_count == 2
    assert features.purchase_count == 1


def test_acknowledged_events_survive_a_new_engine(db_url: str) -> None:
    fs = FeatureStore.from_url(db_url, clock=lambda: NOW)
    fs.migrate()
    fs.load_catalog(_catalog())
    assert fs.ingest_events([_event(1), _event(2, item="I002", minutes=5)]).accepted == 2
    fs.close()
    reopened = FeatureStore.from_url(db_url, clock=lambda: NOW)
    with reopened.engine.connect() as conn:
        ids = conn.scalars(sa.text("select event_id from events order by event_id")).all()
    assert ids == ["e1", "e2"]
    assert reopened.get_user_features("v1.u1", 10).recent_item_ids == ["I002", "I000"]
    reopened.close()


BAD_EVENTS = [
    (Event("", "v1.u", "I000", "view", T0), "events[3].event_id is empty"),
    (Event("e9", "", "I000", "view", T0), "events[3].user_id is empty"),
    (Event("e9", "v1.u", "", "view", T0), "events[3].item_id is empty"),
    (Event("e9", "v1.u", "I000", "", T0), "events[3].type is not a known event type"),
    (Event("e9", "v1.u", "I000", "click", T0), "events[3].type is not a known event type"),
    (Event("e9", "v1.u", "I000", "view", T0, 0), "events[3].quantity must be at least 1"),
    (Event("e9", "v1.u", "I000", "view", None), "events[3].timestamp is missing"),
    (
        Event("e9", "v1.u", "I000", "view", T0.replace(tzinfo=None)),
        "events[3].timestamp has no time zone",
    ),
    (
        Event("e9", "v1.u", "I000", "view", NOW + timedelta(days=2)),
        "events[3].timestamp is in the future",
    ),
    (Event("e" * 129, "v1.u", "I000", "view", T0), "events[3].event_id is longer than 128"),
    (Event("e9", "v1.u", "NOT-IN-CATALOG", "view", T0), "events[3].item_id is not in the catalog"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_EVENTS)
def test_malformed_event_names_the_field_and_rejects_the_batch(
    store: FeatureStore, bad: Event, message: str
) -> None:
    batch = [_event(0), _event(1), _event(2), bad, _event(4)]
    with pytest.raises(InvalidArgument) as err:
        store.ingest_events(batch)
    assert err.value.message.startswith(message)
    assert "v1.u" not in err.value.message  # no user id in the message
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from events")) == 0
        assert conn.scalar(sa.text("select count(*) from users")) == 0


def test_user_features_are_derived_in_the_same_transaction(store: FeatureStore) -> None:
    store.ingest_events(
        [
            _event(1, item="I000", kind="view", minutes=0),  # home
            _event(2, item="I001", kind="view", minutes=1),  # toys
            _event(3, item="I001", kind="purchase", minutes=2, quantity=3),  # toys
            _event(4, item="I000", kind="add_to_cart", minutes=3),  # home
            _event(5, item="I002", kind="view", minutes=4),  # grocery
            _event(6, user="v1.other", item="I003", kind="purchase", minutes=9),
        ]
    )
    f = store.get_user_features("v1.u1", 10)
    assert f.known
    assert f.recent_item_ids == ["I002", "I000", "I001"]  # distinct, newest first
    assert store.get_user_features("v1.u1", 2).recent_item_ids == ["I002", "I000"]
    assert f.event_count == 5
    assert f.purchase_count == 1
    assert f.purchased_item_ids == ["I001"]
    assert f.last_event_time == T0 + timedelta(minutes=4)
    # weights view 1, cart 2, purchase 4: toys 1+4=5, home 1+2=3, grocery 1 of 9
    assert [c for c, _ in f.category_affinities] == ["toys", "home", "grocery"]
    assert [round(s, 6) for _, s in f.category_affinities] == [
        round(5 / 9, 6),
        round(3 / 9, 6),
        round(1 / 9, 6),
    ]
    unknown = store.get_user_features("v1.nobody", 10)
    assert not unknown.known
    assert unknown.recent_item_ids == []
    assert unknown.event_count == 0
    with pytest.raises(InvalidArgument, match="user_id is empty"):
        store.get_user_features("", 10)
    with pytest.raises(InvalidArgument, match="max_recent_items"):
        store.get_user_features("v1.u1", -1)


def test_incremental_features_equal_a_rebuild_from_the_log(store: FeatureStore) -> None:
    rng = random.Random(11)
    kinds = ("view", "add_to_cart", "purchase")
    log = [
        _event(
            n,
            user=f"v1.u{rng.randrange(5)}",
            item=f"I{rng.randrange(12):03d}",
            kind=rng.choice(kinds),
            minutes=rng.randrange(10_000),
            quantity=1 + rng.randrange(3),
        )
        for n in range(300)
    ]
    rng.shuffle(log)  # out-of-order arrival, in uneven batches, with re-sent batches
    start = 0
    while start < len(log):
        size = rng.randrange(1, 60)
        store.ingest_events(log[start : start + size])
        store.ingest_events(log[max(0, start - 5) : start + 3])
        start += size
    incremental = _derived(store)
    assert store.rebuild_user_features() == 5
    assert _derived(store) == incremental


def test_concurrent_ingestion_of_the_same_events_counts_each_once(store: FeatureStore) -> None:
    batch = [_event(n, item=f"I{n % 12:03d}", minutes=n) for n in range(200)]
    results = []
    barrier = threading.Barrier(3)

    def worker(seed: int) -> None:
        mine = list(batch)
        random.Random(seed).shuffle(mine)
        barrier.wait()
        for i in range(0, len(mine), 25):
            results.append(store.ingest_events(mine[i : i + 25]))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.accepted for r in results) == 200
    assert sum(r.duplicates for r in results) == 400
    assert store.get_user_features("v1.u1", 5).event_count == 200


# ---- aggregates for the privacy gateway ------------------------------------------------------


def test_rotation_bounds_each_person_not_each_pseudonym(store: FeatureStore) -> None:
    """A rotated key: the same shoppers under v1 (before) and v2 (after). While both versions
    hold data the counts are refused; after re-keying, each person contributes at most k."""
    before = KeyRing.generate()
    ring = before.rotated()
    v1, v2 = before.active_version, ring.active_version
    people = ["ann", "bob", "cat"]
    k = 2
    events = []
    for p, person in enumerate(people):
        old = ring.pseudonym_under(person, v1)
        new = ring.pseudonym_under(person, v2)
        # Three items before the rotation, three other items after it.
        for j in range(3):
            events.append(_event(100 * p + j, old, f"I{j:03d}", minutes=j))
            events.append(_event(100 * p + 50 + j, new, f"I{j + 3:03d}", minutes=10 + j))
    store.ingest_events(events)
    after_rotation = EventWindow(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
    for kind in AggregateKind:
        with pytest.raises(FailedPrecondition, match="more than one pseudonymization key"):
            store.contribution_bounded_counts(kind, k)
        # Also over a window that holds only new-key events: the store cannot tell which
        # of the people's other events are theirs, so it refuses whatever the window.
        with pytest.raises(FailedPrecondition, match="more than one pseudonymization key"):
            store.contribution_bounded_counts(kind, k, after_rotation)
    store.rename_users({ring.pseudonym_under(p, v1): ring.pseudonym_under(p, v2) for p in people})
    counts = store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, k)
    # Per person (three of them), at most k keys: the total is at most 3 k, and each
    # person's k newest items (I005, I004) are what counts.
    assert sum(counts.values()) == len(people) * k
    assert {key: n for key, n in counts.items() if n} == {"I004": 3, "I005": 3}


def test_contribution_bounded_counts_limit_each_user(store: FeatureStore) -> None:
    # u1 touches I000, I001, I002 (newest I002), u2 touches I000 twice and I003.
    store.ingest_events(
        [
            _event(1, "v1.u1", "I000", minutes=1),
            _event(2, "v1.u1", "I001", minutes=2),
            _event(3, "v1.u1", "I002", minutes=3),
            _event(4, "v1.u2", "I000", minutes=1),
            _event(5, "v1.u2", "I000", "purchase", minutes=5),
            _event(6, "v1.u2", "I003", minutes=4),
        ]
    )
    full = store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 10)
    assert len(full) == 12  # every catalog item, zeros included
    assert {k: v for k, v in full.items() if v} == {"I000": 2, "I001": 1, "I002": 1, "I003": 1}
    # Bound 1: each user counts only for their most recent item (u1 -> I002, u2 -> I000).
    one = store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 1)
    assert {k: v for k, v in one.items() if v} == {"I002": 1, "I000": 1}
    assert sum(one.values()) == 2
    # Categories: I000 home, I001 toys, I002 grocery, I003 home.
    trend = store.contribution_bounded_counts(AggregateKind.CATEGORY_TREND, 10)
    assert trend == {"grocery": 1, "home": 2, "toys": 1}
    # u1's newest category is grocery (I002); u2's is home (I000 at minute 5).
    assert store.contribution_bounded_counts(AggregateKind.CATEGORY_TREND, 1) == {
        "grocery": 1,
        "home": 1,
        "toys": 0,
    }
    with pytest.raises(InvalidArgument, match="max_contributions_per_user"):
        store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 0)


def test_a_window_counts_only_its_events_and_bounds_each_user_within_it(
    store: FeatureStore,
) -> None:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    # u1: I000 at 0 (before), I001 at 10 (start, in), I002 at 11, I003 at 12, I004 at 20 (end,
    # out), I005 at 30 (after). u2: I001 at 15 and again at 25 (the later one is outside).
    store.ingest_events(
        [
            _event(1, "v1.u1", "I000", minutes=0),
            _event(2, "v1.u1", "I001", minutes=10),
            _event(3, "v1.u1", "I002", minutes=11),
            _event(4, "v1.u1", "I003", minutes=12),
            _event(5, "v1.u1", "I004", minutes=20),
            _event(6, "v1.u1", "I005", minutes=30),
            _event(7, "v1.u2", "I001", minutes=15),
            _event(8, "v1.u2", "I006", minutes=25),
        ]
    )
    window = EventWindow(at(10), at(20))  # [start, end): I001..I003 of u1, I001 of u2
    full = store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 10, window)
    assert len(full) == 12
    assert {k: v for k, v in full.items() if v} == {"I001": 2, "I002": 1, "I003": 1}
    # Bound 2 within the window: u1's two newest events in it (I003, I002), not their newer
    # ones outside it (I005, I004), which would leave nothing in the window to count.
    two = store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 2, window)
    assert {k: v for k, v in two.items() if v} == {"I001": 1, "I002": 1, "I003": 1}
    assert sum(two.values()) <= 2 * 2
    # Categories: I001 toys, I002 grocery, I003 home (the event's top category).
    trend = store.contribution_bounded_counts(AggregateKind.CATEGORY_TREND, 1, window)
    assert trend == {"grocery": 0, "home": 1, "toys": 1}
    # Disjoint windows read disjoint events: the two halves add up to the whole.
    first = store.contribution_bounded_counts(
        AggregateKind.ITEM_POPULARITY, 10, EventWindow(at(0), at(20))
    )
    second = store.contribution_bounded_counts(
        AggregateKind.ITEM_POPULARITY, 10, EventWindow(at(20), at(40))
    )
    assert {k: v for k, v in second.items() if v} == {"I004": 1, "I005": 1, "I006": 1}
    assert sum(first.values()) + sum(second.values()) == 8
    empty = EventWindow(at(100), at(200))
    assert set(
        store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 5, empty).values()
    ) == {0}


def test_a_window_around_every_event_equals_the_counts_over_every_event(
    store: FeatureStore,
) -> None:
    """The windowed path groups the log; the unbounded path reads the derived tables kept in
    the ingest transaction. On the same events they must agree."""
    rng = random.Random(7)
    store.ingest_events(
        [
            _event(
                n,
                f"v1.u{rng.randrange(15)}",
                f"I{rng.randrange(12):03d}",
                rng.choice(["view", "add_to_cart", "purchase"]),
                minutes=rng.randrange(1000),
            )
            for n in range(300)
        ]
    )
    everything = EventWindow(T0 - timedelta(days=1), T0 + timedelta(days=1))
    for kind in AggregateKind:
        for k in (1, 3, 20):
            assert store.contribution_bounded_counts(
                kind, k, everything
            ) == store.contribution_bounded_counts(kind, k)


def test_popularity_release_orders_the_popular_list(store: FeatureStore) -> None:
    before = store.get_popular_items(3)
    assert before.release_id == ""
    assert [it.item_id for it in before.items] == ["I000", "I001", "I002"]
    updated = store.set_item_popularity(
        "rel-1", [("I004", 7.5), ("I009", 12.0), ("I001", -0.5), ("ghost", 3.0)]
    )
    assert updated == 3  # the unknown id is ignored
    popular = store.get_popular_items(3, exclusions=["I009"])
    assert popular.release_id == "rel-1"
    assert [(it.item_id, it.dp_popularity) for it in popular.items] == [
        ("I004", 7.5),
        ("I000", 0.0),
        ("I002", 0.0),
    ]
    # A new release replaces the old one entirely: I004 is not in it and drops to 0.
    store.set_item_popularity("rel-2", [("I011", 1.0)])
    top = store.get_popular_items(2)
    assert [(it.item_id, it.dp_popularity) for it in top.items] == [("I011", 1.0), ("I000", 0.0)]
    assert top.release_id == "rel-2"
    with store.engine.connect() as conn:
        releases = conn.execute(
            sa.text("select release_id, item_count from popularity_releases order by 1")
        ).all()
    assert [tuple(r) for r in releases] == [("rel-1", 3), ("rel-2", 1)]


@pytest.mark.parametrize(
    ("release", "values", "message"),
    [
        ("", [("I000", 1.0)], "release_id is empty"),
        ("r", [("I000", float("inf"))], r"popularities\[0\].count is not a finite number"),
        ("r", [("I000", 1.0), ("", 1.0)], r"popularities\[1\].key is empty"),
        ("r", [("I000", 1.0), ("I000", 2.0)], r"popularities\[1\].key repeats"),
    ],
)
def test_bad_popularity_release_is_rejected(
    store: FeatureStore, release: str, values: list[tuple[str, float]], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        store.set_item_popularity(release, values)


def test_popular_items_limit_must_be_positive(store: FeatureStore) -> None:
    with pytest.raises(InvalidArgument, match="limit must be at least 1"):
        store.get_popular_items(0)


# ---- key rotation ----------------------------------------------------------------------------


def test_rename_users_moves_events_and_features(store: FeatureStore) -> None:
    store.ingest_events(
        [
            _event(1, "v1.a", "I000", "purchase", minutes=1),
            _event(2, "v1.a", "I001", minutes=2),
            _event(3, "v1.b", "I002", minutes=3),
        ]
    )
    before = store.get_user_features("v1.a", 10)
    assert store.rename_users({"v1.a": "v2.a", "v1.missing": "v2.missing"}) == 1
    after = store.get_user_features("v2.a", 10)
    assert not store.get_user_features("v1.a", 10).known
    assert after.recent_item_ids == before.recent_item_ids
    assert after.purchased_item_ids == ["I000"]
    assert after.category_affinities == before.category_affinities
    with store.engine.connect() as conn:
        owners = conn.execute(sa.text("select distinct user_id from events order by 1")).all()
    assert [r[0] for r in owners] == ["v1.b", "v2.a"]
    # Re-running the job after it finished changes nothing.
    assert store.rename_users({"v1.a": "v2.a"}) == 0


def test_rename_merges_with_events_already_under_the_new_key(store: FeatureStore) -> None:
    store.ingest_events(
        [
            _event(1, "v1.a", "I000", "purchase", minutes=1),
            _event(2, "v2.a", "I001", minutes=2),  # arrived under the new key mid-rotation
        ]
    )
    assert store.rename_users({"v1.a": "v2.a"}) == 1
    merged = store.get_user_features("v2.a", 10)
    assert merged.event_count == 2
    assert merged.recent_item_ids == ["I001", "I000"]
    assert merged.purchased_item_ids == ["I000"]
    assert not store.get_user_features("v1.a", 10).known


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"v1.a": "v2.x", "v1.b": "v2.x"}, "not one-to-one"),
        ({"v1.a": "v1.b", "v1.b": "v2.b"}, "chains pseudonyms"),
        ({"": "v2.a"}, "mapping key is empty"),
        ({"v1.a": ""}, "mapping value is empty"),
    ],
)
def test_bad_rename_mapping_is_rejected(
    store: FeatureStore, mapping: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        store.rename_users(mapping)


# ---- seeding ---------------------------------------------------------------------------------


def test_seed_dataset_stores_pseudonyms_only_and_is_idempotent(db_url: str) -> None:
    dataset = synthetic.generate(n_items=40, n_users=8, sessions_per_user=3, seed=5)
    fs = FeatureStore.from_url(db_url)
    fs.migrate()

    def pseudonymize(raw: str) -> str:
        return "v9." + raw[::-1].replace("user", "p")

    first = fs.seed_dataset(dataset, pseudonymize, batch_size=17)
    assert first.items_inserted == 40
    assert first.users == 8
    assert first.events_accepted == len(dataset.interactions)
    second = fs.seed_dataset(dataset, pseudonymize, batch_size=50)
    assert (second.items_updated, second.events_accepted) == (40, 0)
    assert second.events_duplicate == len(dataset.interactions)
    with fs.engine.connect() as conn:
        stored = set(conn.scalars(sa.text("select user_id from users")))
        assert stored == {pseudonymize(u) for u in dataset.users()}
        for table in ("events", "user_stats", "user_items", "user_categories"):
            for row in conn.execute(sa.text(f"select * from {table}")):
                assert not any("user-" in str(v) for v in row), table
    fs.close()


def test_seed_refuses_an_identity_pseudonymizer(store: FeatureStore) -> None:
    dataset = synthetic.generate(n_items=40, n_users=3, sessions_per_user=2, seed=1)
    assert dataset.interactions
    with pytest.raises(ValueError, match="pseudonymize returned"):
        store.seed_dataset(dataset, lambda raw: raw)
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("select count(*) from users")) == 0


def _bounded_reference(log: list[Event], keys: dict[str, str], m: int) -> dict[str, int]:
    """Brute force: each user's keys by latest event (ties by key), the first m counted once."""
    latest: dict[str, dict[str, datetime]] = {}
    for e in log:
        assert e.timestamp is not None
        key = keys[e.item_id]
        mine = latest.setdefault(e.user_id, {})
        mine[key] = max(mine.get(key, e.timestamp), e.timestamp)
    counts = dict.fromkeys(sorted(set(keys.values())), 0)
    for mine in latest.values():
        for key, _ in sorted(mine.items(), key=lambda kv: (-kv[1].timestamp(), kv[0]))[:m]:
            counts[key] += 1
    return counts


def test_contribution_bounds_match_a_brute_force_reference(store: FeatureStore) -> None:
    rng = random.Random(5)
    log = [
        _event(
            n,
            user=f"v1.u{rng.randrange(8)}",
            item=f"I{rng.randrange(12):03d}",
            minutes=rng.randrange(500),
        )
        for n in range(300)
    ]
    store.ingest_events(log)
    item_keys = {f"I{i:03d}": f"I{i:03d}" for i in range(12)}
    category_keys = {f"I{i:03d}": CATEGORIES[i % 3] for i in range(12)}
    for m in (1, 3, 50):
        assert store.contribution_bounded_counts(
            AggregateKind.ITEM_POPULARITY, m
        ) == _bounded_reference(log, item_keys, m)
        assert store.contribution_bounded_counts(
            AggregateKind.CATEGORY_TREND, m
        ) == _bounded_reference(log, category_keys, m)


def test_programming_errors_fail_loudly(tmp_path: object) -> None:
    from alembic import command
    from alembic.config import Config

    from services.feature_store.schema import UtcDateTime

    engine = sa.create_engine(f"sqlite:///{tmp_path}/x.sqlite")
    with pytest.raises(ValueError, match="event_weights"):
        FeatureStore(engine, event_weights={"view": 1.0})
    with pytest.raises(ValueError, match="naive datetime"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1), engine.dialect)
    fs = FeatureStore(engine)
    dataset = synthetic.generate(n_items=5, n_users=1, sessions_per_user=1, seed=1)
    with pytest.raises(ValueError, match="batch_size"):
        fs.seed_dataset(dataset, lambda raw: "v1.x", batch_size=0)
    # Alembic run from its CLI (without the connection the service hands over) is refused.
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    with pytest.raises(RuntimeError, match=r"services\.feature_store\.db\.upgrade"):
        command.upgrade(cfg, "head")
    engine.dispose()


@pytest.mark.postgres
def test_postgres_commits_synchronously_even_when_the_default_is_off(pg_schema_url: str) -> None:
    # The URL turns synchronous_commit off for the session, as a careless default would.
    fs = FeatureStore.from_url(f"{pg_schema_url}%20-csynchronous_commit%3Doff")
    with fs.engine.connect() as conn:
        assert conn.exec_driver_sql("show synchronous_commit").scalar() == "on"
    fs.close()
    plain = sa.create_engine(f"{pg_schema_url}%20-csynchronous_commit%3Doff")
    with plain.connect() as conn:
        assert conn.exec_driver_sql("show synchronous_commit").scalar() == "off"
    plain.dispose()


def test_migrations_ship_in_the_installed_package() -> None:
    """The image installs the project non-editably; the package discovery configured in
    pyproject.toml must carry the migration scripts, which have no __init__.py."""
    import tomllib
    from pathlib import Path

    from setuptools import find_namespace_packages, find_packages

    repo = Path(db.__file__).resolve().parents[2]
    config = tomllib.loads((repo / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    # setuptools' pyproject discovery finds namespace packages unless told otherwise.
    finder = find_namespace_packages if find.get("namespaces", True) else find_packages
    found = set(finder(where=str(repo), include=find.get("include", ["*"])))
    assert "services.feature_store.migrations" in found
    assert "services.feature_store.migrations.versions" in found
    assert (db.MIGRATIONS_DIR / "versions" / "r0001_initial.py").exists()
