"""Loader for the Instacart 2017 layout: products with the real aisle/department taxonomy.

The sample has almost one order per user and no absolute timestamps, so it supports text and
category work (category coverage of a reranker, BERT on product names), not temporal
evaluation. Timestamps are synthesized from order_number and days_since_prior_order only to
keep the order of a user's baskets.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from shared.data.types import EVENT_PURCHASE, CatalogItem, Dataset, Interaction, shared_data_dir

_EPOCH = datetime(2017, 1, 1, tzinfo=UTC)


def default_dir() -> Path:
    return shared_data_dir() / "instacart-sample"


def load(folder: Path | str | None = None) -> Dataset:
    """Catalog with (department, aisle) category paths and purchase interactions.

    Instacart has no prices; ``price`` is 0.0.
    """
    root = Path(folder) if folder else default_dir()
    needed = [
        "products.csv",
        "aisles.csv",
        "departments.csv",
        "orders.csv",
        "order_products__prior.csv",
    ]
    missing = [n for n in needed if not (root / n).exists()]
    if missing:
        raise FileNotFoundError(f"Instacart files missing in {root}: {missing}")
    products = pd.read_csv(root / "products.csv")
    aisles = pd.read_csv(root / "aisles.csv").set_index("aisle_id")["aisle"]
    departments = pd.read_csv(root / "departments.csv").set_index("department_id")["department"]
    items = {
        str(pid): CatalogItem(str(pid), str(name), (departments[dep], aisles[aisle]), 0.0)
        for pid, name, aisle, dep in zip(
            products["product_id"],
            products["product_name"],
            products["aisle_id"],
            products["department_id"],
            strict=True,
        )
    }
    orders = pd.read_csv(root / "orders.csv", dtype={"order_hour_of_day": int})
    lines = pd.read_csv(root / "order_products__prior.csv").merge(orders, on="order_id")
    lines = lines[lines["product_id"].astype(str).isin(items)]
    days = lines["order_number"] * 7 + lines["days_since_prior_order"].fillna(0)
    interactions = [
        Interaction(
            str(user),
            str(pid),
            _EPOCH + timedelta(days=float(d), hours=int(h), seconds=int(pos)),
            EVENT_PURCHASE,
        )
        for user, pid, d, h, pos in zip(
            lines["user_id"],
            lines["product_id"],
            days,
            lines["order_hour_of_day"],
            lines["add_to_cart_order"],
            strict=True,
        )
    ]
    return Dataset(
        "instacart",
        items,
        interactions,
        notes={"timestamps": "synthesized from order_number; no temporal split"},
    )
