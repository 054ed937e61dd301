from pathlib import Path

import pandas as pd
import pytest

from shared.data import instacart, online_retail, synthetic, temporal_split


def test_synthetic_is_deterministic_and_shaped() -> None:
    a = synthetic.generate(n_items=200, n_users=40, seed=3)
    b = synthetic.generate(n_items=200, n_users=40, seed=3)
    c = synthetic.generate(n_items=200, n_users=40, seed=4)
    assert a.interactions == b.interactions
    assert a.interactions != c.interactions
    assert len(a.items) == 200
    assert all(len(it.category_path) == 3 and it.price > 0 for it in a.items.values())
    assert {x.item_id for x in a.interactions} <= set(a.items)
    assert [x.timestamp for x in a.interactions] == sorted(x.timestamp for x in a.interactions)


def test_temporal_split_never_leaks_the_future() -> None:
    ds = synthetic.generate(n_items=100, n_users=30)
    train, test = temporal_split(ds, 0.8)
    assert train
    assert test
    assert max(x.timestamp for x in train) < min(x.timestamp for x in test)
    with pytest.raises(ValueError, match="train_fraction"):
        temporal_split(ds, 1.0)


def test_online_retail_cleaning_on_real_sample(data_dir: Path) -> None:
    ds = online_retail.load(data_dir / "online-retail-sample" / "online_retail_sample40k.csv.gz")
    # Figures of the dataset README's "clean purchases" view, less its 28 exact duplicate rows.
    assert len(ds.items) == 2865
    assert len(ds.users()) == 3587
    assert 29_100 <= len(ds.interactions) <= 29_180
    assert all(not code.startswith(("POST", "DOT", "BANK")) for code in ds.items)
    assert all(x.quantity > 0 for x in ds.interactions)


def test_online_retail_rejects_wrong_layout(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="missing columns"):
        online_retail.load(path)
    with pytest.raises(FileNotFoundError):
        online_retail.load(tmp_path / "absent.csv")


def test_online_retail_clean_drops_bad_rows() -> None:
    frame = pd.DataFrame(
        {
            "InvoiceNo": ["1", "C2", "3", "4", "5"],
            "StockCode": ["12345", "12345", "POST", "23456A", "34567"],
            "Description": ["A", "A", "P", "B", "C"],
            "Quantity": [1, 1, 1, 2, -1],
            "InvoiceDate": pd.to_datetime(["2011-01-01"] * 5),
            "UnitPrice": [1.0, 1.0, 1.0, 2.0, 1.0],
            "CustomerID": [1.0, 1.0, 1.0, None, 2.0],
        }
    )
    assert online_retail.clean(frame)["InvoiceNo"].tolist() == ["1"]


def test_instacart_taxonomy(data_dir: Path) -> None:
    ds = instacart.load(data_dir / "instacart-sample")
    assert len(ds.items) == 9288
    assert len({it.top_category for it in ds.items.values()}) == 21
    assert len({it.leaf_category for it in ds.items.values()}) == 134
    assert len(ds.interactions) == 30121
