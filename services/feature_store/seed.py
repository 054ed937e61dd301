"""Load a dataset into the feature store, user ids pseudonymized with the privacy gateway's key.

    python -m services.feature_store.seed --dataset synthetic \\
        --database-url sqlite:///var/feature_store.sqlite \\
        --pseudonym-key-file var/keys/pseudonym-keys.json

The job migrates the database, upserts the catalog and ingests the interactions as events with
deterministic ids, so running it twice stores nothing new. Raw user ids exist only in this
process, between the dataset loader and the HMAC; the database receives pseudonyms only.
Prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from services.feature_store.store import FeatureStore
from shared.data.types import Dataset

DATASETS = ("synthetic", "online-retail", "instacart")
DEFAULT_KEY_FILE = "var/keys/pseudonym-keys.json"


def load_dataset(
    name: str, *, path: str | None = None, n_items: int = 2000, n_users: int = 500, seed: int = 7
) -> Dataset:
    """A dataset by name; ``path`` overrides the real datasets' default location."""
    if name == "synthetic":
        from shared.data import synthetic

        return synthetic.generate(n_items=n_items, n_users=n_users, seed=seed)
    if name == "online-retail":
        from shared.data import online_retail

        return online_retail.load(path)
    if name == "instacart":
        from shared.data import instacart

        return instacart.load(path)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def key_pseudonymizer(key_file: str | Path) -> Callable[[str], str]:
    """The privacy gateway's keyed pseudonym function under the ring's active key version."""
    from services.privacy_gateway.pseudonym import load_key_ring

    return load_key_ring(key_file).pseudonymize


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default="synthetic")
    parser.add_argument(
        "--data-path", default=None, help="dataset file or folder (default: ../shared/data)"
    )
    parser.add_argument("--n-items", type=int, default=2000, help="synthetic catalog size")
    parser.add_argument("--n-users", type=int, default=500, help="synthetic shoppers")
    parser.add_argument("--seed", type=int, default=7, help="synthetic generator seed")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "RECSYS_FEATURE_STORE_DATABASE_URL", "sqlite:///var/feature_store.sqlite"
        ),
        help="SQLAlchemy URL (default: $RECSYS_FEATURE_STORE_DATABASE_URL or the SQLite file)",
    )
    parser.add_argument(
        "--pseudonym-key-file",
        default=os.environ.get("RECSYS_PRIVACY_GATEWAY_KEY_FILE", DEFAULT_KEY_FILE),
        help="the privacy gateway's key ring JSON "
        "(create it with: python -m services.privacy_gateway.keys generate)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.feature_store.seed")
    add_common_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=2000, help="events per transaction")
    args = parser.parse_args(argv)
    if not Path(args.pseudonym_key_file).exists():
        print(
            f"key ring {args.pseudonym_key_file} not found; create it with "
            "python -m services.privacy_gateway.keys generate --file "
            f"{args.pseudonym_key_file}",
            file=sys.stderr,
        )
        return 2
    pseudonymize = key_pseudonymizer(args.pseudonym_key_file)
    dataset = load_dataset(
        args.dataset,
        path=args.data_path,
        n_items=args.n_items,
        n_users=args.n_users,
        seed=args.seed,
    )
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
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
