"""Load a dataset into the feature store, user ids pseudonymized with the privacy gateway's key.

    python -m ops.seed --data FOLDER|synthetic|online-retail|instacart \\
        --database-url sqlite:///var/feature_store.sqlite \\
        --pseudonym-key-file var/keys/pseudonym-keys.json

The job migrates the database, upserts the catalog and ingests the interactions as events with
deterministic ids, so running it twice stores nothing new. The whole folder is read and
checked before the database is opened, so a folder with a bad row changes nothing. The store
records views, carts and purchases; a rating is stored as a view (the shopper knew the item),
and the counts say how many were. Raw user ids exist only in this
process, between the dataset loader and the HMAC; the database receives pseudonyms only.
Prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ops import defaults
from services.feature_store.store import FeatureStore
from shared.data.datasets import add_data_arguments, data_from_args
from shared.data.types import EVENT_RATING, EVENT_VIEW, Dataset
from shared.keyring import load_key_ring


def key_pseudonymizer(key_file: str | Path) -> Callable[[str], str]:
    """The privacy gateway's keyed pseudonym function under the ring's active key version."""
    return load_key_ring(key_file).pseudonymize


def add_key_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pseudonym-key-file",
        default=defaults.key_file(),
        help="the privacy gateway's key ring JSON (default: $RECSYS_PRIVACY_GATEWAY_KEY_FILE or "
        "the gateway's default; create it with: python -m ops.keys generate)",
    )


def add_database_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=defaults.feature_store_database_url(),
        help="SQLAlchemy URL (default: $RECSYS_FEATURE_STORE_DATABASE_URL or the store's default)",
    )


def storable(dataset: Dataset) -> tuple[Dataset, int]:
    """The dataset with its ratings as views, and how many there were."""
    ratings = sum(x.event_type == EVENT_RATING for x in dataset.interactions)
    if not ratings:
        return dataset, 0
    log = [
        replace(x, event_type=EVENT_VIEW, value=None) if x.event_type == EVENT_RATING else x
        for x in dataset.interactions
    ]
    return Dataset(dataset.name, dataset.items, log, dict(dataset.notes)), ratings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.seed")
    add_data_arguments(parser)
    add_database_argument(parser)
    add_key_file_argument(parser)
    parser.add_argument("--batch-size", type=int, default=2000, help="events per transaction")
    args = parser.parse_args(argv)
    if not Path(args.pseudonym_key_file).exists():
        print(
            f"key ring {args.pseudonym_key_file} not found; create it with "
            "python -m ops.keys generate --file "
            f"{args.pseudonym_key_file}",
            file=sys.stderr,
        )
        return 2
    pseudonymize = key_pseudonymizer(args.pseudonym_key_file)
    dataset, ratings = storable(data_from_args(args))
    store = FeatureStore.from_url(args.database_url)
    try:
        store.migrate()
        result = store.seed_dataset(dataset, pseudonymize, batch_size=args.batch_size)
    finally:
        store.close()
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "items_inserted": result.items_inserted,
                "items_updated": result.items_updated,
                "events_accepted": result.events_accepted,
                "events_duplicate": result.events_duplicate,
                "users": result.users,
                "ratings_stored_as_views": ratings,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
