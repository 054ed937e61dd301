"""Loader for the UCI "Online Retail" layout (InvoiceNo, StockCode, Description, Quantity,
InvoiceDate, UnitPrice, CustomerID, Country), as CSV (optionally gzip) or XLSX.

Cleaning: drop cancellations (InvoiceNo starting with C), non-positive quantities or prices,
missing customers, and codes that are not products (POST, DOT, BANK CHARGES, ...: only
``^\\d{5}[A-Za-z]*$`` is kept). The data has no categories; ``category_path`` is DERIVED from
the title's last word (the product noun, e.g. "sign", "bag"), a keyword rule, not a real label.
It is a one-level path: a shared top level would put every item in one category, so a
per-category cap would cap the whole page and category similarity would be a constant.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shared.data.types import EVENT_PURCHASE, CatalogItem, Dataset, Interaction, shared_data_dir

PRODUCT_CODE = r"^\d{5}[A-Za-z]*$"
COLUMNS = [
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
]


def default_path() -> Path:
    return shared_data_dir() / "online-retail-sample" / "online_retail_sample40k.csv.gz"


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"Online Retail file not found: {path} (set RECSYS_DATA_DIR)")
    dtypes = {"InvoiceNo": str, "StockCode": str}
    if path.suffix == ".xlsx":
        frame = pd.read_excel(path, dtype=dtypes)
    else:
        frame = pd.read_csv(path, dtype=dtypes)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not in the Online Retail layout; missing columns {missing}")
    # The file has no zone; UTC, as the interchange format reads a zone-less timestamp.
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"]).dt.tz_localize("UTC")
    return frame


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """The "clean purchases" view: real products bought by known customers."""
    f = frame.dropna(subset=["CustomerID", "Description"])
    f = f[~f["InvoiceNo"].str.startswith("C")]
    f = f[(f["Quantity"] > 0) & (f["UnitPrice"] > 0)]
    f = f[f["StockCode"].str.match(PRODUCT_CODE)]
    f = f.drop_duplicates()
    f = f.assign(CustomerID=f["CustomerID"].astype(int).astype(str))
    return f.reset_index(drop=True)


def _category(title: str) -> tuple[str, ...]:
    words = [w for w in title.replace(",", " ").split() if w.isalpha()]
    return (words[-1].lower(),) if words else ("other",)


def load(path: Path | str | None = None) -> Dataset:
    """Load and clean an Online Retail file into a Dataset of purchases."""
    frame = clean(_read(Path(path) if path else default_path()))
    # One title and price per item: the most frequent description, the median unit price.
    titles = frame.groupby("StockCode")["Description"].agg(lambda s: s.mode().iloc[0].strip())
    prices = frame.groupby("StockCode")["UnitPrice"].median()
    items = {
        code: CatalogItem(
            code, titles[code], _category(titles[code]), round(float(prices[code]), 2)
        )
        for code in titles.index
    }
    interactions = [
        Interaction(cust, code, ts.to_pydatetime(), EVENT_PURCHASE, int(qty))
        for cust, code, ts, qty in zip(
            frame["CustomerID"],
            frame["StockCode"],
            frame["InvoiceDate"],
            frame["Quantity"],
            strict=True,
        )
    ]
    return Dataset(
        "online-retail",
        items,
        interactions,
        notes={"categories": "derived from the title's last word, not real labels"},
    )
