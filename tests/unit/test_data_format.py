"""The data format: its error messages, --skip-bad-rows, the importers' round trips, the
resolver, the evaluation catalog, and a seed that fails before touching the store."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from offline.data.cli import main as data_main
from ops import seed
from shared.data import instacart, online_retail, synthetic
from shared.data.datasets import load_data
from shared.data.format import DataFormatError, load_folder, write_folder
from shared.data.types import (
    Dataset,
    catalog_at,
    evaluation_catalog,
    split_log,
    temporal_split,
    time_cut,
)
from shared.keyring import KeyRing, save_key_ring

ITEMS = "item_id,title,category_path,price,available,first_seen\n"
EVENTS = "user_id,item_id,timestamp,type,quantity,value\n"


def _folder(tmp_path: Path, items: str, events: str) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "items.csv").write_text(ITEMS + items)
    (folder / "events.csv").write_text(EVENTS + events)
    return folder


GOOD_ITEMS = "A,Red mug,home > kitchen,3.5,true,2011-01-01\nB,Blue mug,home > kitchen,,,\n"


def test_a_hand_written_folder_loads(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        GOOD_ITEMS,
        "u1,A,2011-12-01T08:26:00,purchase,2,\n"
        "u1,B,1322733600,view,,\n"
        "u2,A,2011-12-02 10:00:00+01:00,rating,,4.5\n",
    )
    dataset, report = load_folder(folder)
    assert dataset.name == "shop"
    assert dataset.items["A"].category_path == ("home", "kitchen")
    assert dataset.items["A"].first_seen == datetime(2011, 1, 1, tzinfo=UTC)
    assert dataset.items["B"].price == 0.0
    assert dataset.items["B"].available
    first, second, third = dataset.interactions
    assert (first.item_id, first.quantity) == ("A", 2)
    assert second.timestamp == datetime(2011, 12, 1, 10, 0, tzinfo=UTC)  # Unix seconds
    assert third.event_type == "rating"
    assert third.value == 4.5
    assert third.timestamp == datetime(2011, 12, 2, 9, 0, tzinfo=UTC)
    assert report.skipped == {"items.csv": 0, "events.csv": 0}


@pytest.mark.parametrize(
    ("items", "events", "message"),
    [
        (
            GOOD_ITEMS,
            "u1,A,2011-13-01,view,,\n",
            'events.csv:2: timestamp "2011-13-01" is not a date',
        ),
        (GOOD_ITEMS, "u1,A,2011-12-01,click,,\n", 'events.csv:2: type "click" is not one of'),
        (GOOD_ITEMS, "u1,Z,2011-12-01,view,,\n", 'events.csv:2: item_id "Z" is not in items.csv'),
        (GOOD_ITEMS, ",A,2011-12-01,view,,\n", "events.csv:2: user_id is empty"),
        (
            GOOD_ITEMS,
            "u1,A,2011-12-01,view,two,\n",
            'events.csv:2: quantity "two" is not a whole number',
        ),
        (GOOD_ITEMS, "u1,A,2011-12-01,view,1.5,\n", 'quantity "1.5" is not a whole number'),
        (GOOD_ITEMS, "u1,A,2011-12-01,view,0,\n", 'events.csv:2: quantity "0" is below 1'),
        (GOOD_ITEMS, "u1,A,2011-12-01,rating,,good\n", 'value "good" is not a number'),
        ("A,,x,1,,\n", "", "items.csv:2: title is empty"),
        (
            "A,Mug,x,1,,\nA,Cup,x,1,,\n",
            "",
            'items.csv:3: item_id "A" is repeated (first on line 2)',
        ),
        ("A,Mug,x,-1,,\n", "", 'items.csv:2: price "-1" is below 0'),
        ("A,Mug,x,1,maybe,\n", "", 'items.csv:2: available "maybe" is not true or false'),
        ("A,Mug,x,1,,yesterday\n", "", 'items.csv:2: first_seen "yesterday" is not a date'),
    ],
)
def test_every_bad_row_is_named_by_file_line_and_column(
    tmp_path: Path, items: str, events: str, message: str
) -> None:
    folder = _folder(tmp_path, items, events)
    with pytest.raises(DataFormatError, match="--skip-bad-rows") as caught:
        load_folder(folder)
    assert message in str(caught.value)


def test_missing_files_and_columns_always_fail(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    with pytest.raises(DataFormatError, match="no items file"):
        load_folder(folder)
    (folder / "items.csv").write_text("item_id\nA\n")
    (folder / "events.csv").write_text(EVENTS)
    with pytest.raises(DataFormatError, match=r"items\.csv: missing required column"):
        load_folder(folder, skip_bad_rows=True)
    (folder / "items.parquet").write_bytes(b"")
    with pytest.raises(DataFormatError, match="more than one items file"):
        load_folder(folder)
    with pytest.raises(DataFormatError, match="not a folder"):
        load_folder(tmp_path / "absent")


def test_skip_bad_rows_drops_and_counts(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        GOOD_ITEMS + "C,,x,1,,\nA,Again,x,1,,\n",
        "u1,A,2011-12-01,view,,\nu1,A,2011-13-01,view,,\nu1,C,2011-12-01,view,,\n",
    )
    dataset, report = load_folder(folder, skip_bad_rows=True)
    assert set(dataset.items) == {"A", "B"}
    assert dataset.items["A"].title == "Red mug"  # the first of a repeated id wins
    assert len(dataset.interactions) == 1
    # The event of the skipped item C is itself a bad row: its item is not in the catalog.
    assert report.skipped == {"items.csv": 2, "events.csv": 2}
    assert 'events.csv:3: timestamp "2011-13-01" is not a date' in report.summary()
    assert "skipped bad rows" in dataset.notes["load"]


def _same(a: Dataset, b: Dataset) -> None:
    assert a.items == b.items
    assert [
        (x.user_id, x.item_id, x.timestamp, x.event_type, x.quantity) for x in a.interactions
    ] == [(x.user_id, x.item_id, x.timestamp, x.event_type, x.quantity) for x in b.interactions]


@pytest.mark.parametrize("suffix", ["csv", "csv.gz", "parquet", "parquet.gz"])
def test_synthetic_import_round_trips_in_every_file_type(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "out"
    args = [
        "import",
        "synthetic",
        str(out),
        "--n-items",
        "60",
        "--n-users",
        "12",
        "--format",
        suffix,
    ]
    assert data_main(args) == 0
    assert (out / f"events.{suffix}").exists()
    _same(load_folder(out)[0], synthetic.generate(n_items=60, n_users=12))


def test_online_retail_import_round_trips(data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / "online-retail-sample" / "online_retail_sample40k.csv.gz"
    assert data_main(["import", "online-retail", str(source), str(tmp_path / "out")]) == 0
    loaded = load_folder(tmp_path / "out")[0]
    _same(loaded, online_retail.load(source))
    # One-level derived categories: many distinct top levels, not one shared "derived".
    tops = {it.top_category for it in loaded.items.values()}
    assert len(tops) > 50
    assert "derived" not in tops


def test_instacart_import_round_trips(data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / "instacart-sample"
    assert data_main(["import", "instacart", str(source), str(tmp_path / "out")]) == 0
    _same(load_folder(tmp_path / "out")[0], instacart.load(source))


def test_an_import_never_overwrites_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert data_main(["import", "synthetic", str(out), "--n-items", "5", "--n-users", "2"]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_the_resolver_reads_folders_and_built_in_names(tmp_path: Path) -> None:
    folder = write_folder(synthetic.generate(n_items=30, n_users=5), tmp_path / "small")
    assert len(load_data(folder).items) == 30
    assert load_data("synthetic").name == "synthetic"
    with pytest.raises(FileNotFoundError, match="neither a folder nor a built-in name"):
        load_data(tmp_path / "nothing")


def test_parquet_with_native_types_loads(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    pd.DataFrame({"item_id": ["A"], "title": ["Mug"], "price": [2.0]}).to_parquet(
        folder / "items.parquet"
    )
    events = pd.DataFrame(
        {
            "user_id": ["u"],
            "item_id": ["A"],
            "timestamp": pd.to_datetime(["2020-01-01 10:00"]),
            "type": ["view"],
            "quantity": [3],
        }
    )
    (folder / "events.parquet.gz").write_bytes(gzip.compress(events.to_parquet()))
    dataset, _ = load_folder(folder)
    (event,) = dataset.interactions
    assert event.timestamp == datetime(2020, 1, 1, 10, tzinfo=UTC)
    assert event.quantity == 3
    pd.DataFrame({"item_id": ["B"], "title": ["Cup"]}).to_parquet(folder / "items.parquet")
    with pytest.raises(DataFormatError, match=r'events\.parquet\.gz:1: item_id "A" is not in'):
        load_folder(folder)


def test_the_evaluation_catalog_is_what_was_known_at_the_cut(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "A,Mug,x,1,,\nB,Cup,x,1,,2011-01-01\nC,Pot,x,1,,\nD,Jug,x,1,,2012-06-01\n",
        "".join(f"u{i},A,2011-12-0{i + 1},view,,\n" for i in range(8)) + "u1,C,2011-12-09,view,,\n",
    )
    dataset = load_folder(folder)[0]
    cut = time_cut(dataset, 0.8)
    # A has events before the cut, B was listed before it; C appears only after, D later.
    assert set(catalog_at(dataset, cut)) == {"A", "B"}
    known, note = evaluation_catalog(dataset, "cut")
    assert set(known) == {"A", "B"}
    assert note.startswith("catalog known at the cut (2 of 4 items")
    full, note = evaluation_catalog(dataset, "full")
    assert set(full) == {"A", "B", "C", "D"}
    assert note.startswith("full catalog")


def test_a_bad_folder_fails_the_seed_before_the_store_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "keys.json"
    save_key_ring(KeyRing.generate(), key_file)
    db = tmp_path / "fs.sqlite"
    common = ["--database-url", f"sqlite:///{db}", "--pseudonym-key-file", str(key_file)]
    bad = _folder(tmp_path, GOOD_ITEMS, "u1,A,2011-12-01,view,,\nu1,A,2011-13-01,view,,\n")
    with pytest.raises(SystemExit) as exited:
        seed.main(["--data", str(bad), *common])
    assert exited.value.code == 2
    assert 'events.csv:3: timestamp "2011-13-01" is not a date' in capsys.readouterr().err
    assert not db.exists()
    # With --skip-bad-rows the good row is stored; ratings are stored as views.
    (bad / "events.csv").write_text(
        EVENTS + "u1,A,2011-12-01,view,,\nu1,A,2011-13-01,view,,\nu2,B,2011-12-02,rating,,5\n"
    )
    assert seed.main(["--data", str(bad), "--skip-bad-rows", *common]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["events_accepted"] == 2
    assert report["ratings_stored_as_views"] == 1
    assert "skipped bad rows (events.csv: 1)" in out.err


def test_a_plain_log_is_cut_by_the_rule_of_the_temporal_split() -> None:
    dataset = synthetic.generate(n_items=60, n_users=30)
    # Shuffled, as a training period assembled from several sources may be.
    shuffled = list(reversed(dataset.interactions))
    before, after = split_log(shuffled, 0.8)
    train, test = temporal_split(dataset, 0.8)
    assert len(before) == len(train)
    assert set(before) == set(train)
    assert len(after) == len(test)
    assert set(after) == set(test)
    assert max(x.timestamp for x in before) < min(x.timestamp for x in after)
    with pytest.raises(ValueError, match="empty"):
        split_log([], 0.8)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        split_log(shuffled, 1.0)
