"""Re-key stored users after a pseudonymization key rotation.

    python -m services.privacy_gateway.keys rotate --file var/keys/pseudonym-keys.json
    python -m services.feature_store.rekey --dataset synthetic --from-version v1

A keyed pseudonym cannot be inverted, so re-keying needs the raw ids from their source of
truth (here the dataset the store was seeded from; in production the account database): for
each raw id the old pseudonym (``--from-version``) is renamed to the one under the active key.
The store commits per chunk and skips users already renamed, so the job can be re-run after an
interruption. Prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from services.feature_store.seed import add_common_arguments, load_dataset
from services.feature_store.store import FeatureStore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.feature_store.rekey")
    add_common_arguments(parser)
    parser.add_argument(
        "--from-version", required=True, help="key version the stored pseudonyms were made with"
    )
    args = parser.parse_args(argv)
    from services.privacy_gateway.pseudonym import load_key_ring

    if not Path(args.pseudonym_key_file).exists():
        print(f"key ring {args.pseudonym_key_file} not found", file=sys.stderr)
        return 2
    ring = load_key_ring(args.pseudonym_key_file)
    if args.from_version == ring.active_version:
        print(f"{args.from_version} is the active key version: nothing to re-key", file=sys.stderr)
        return 2
    dataset = load_dataset(
        args.dataset,
        path=args.data_path,
        n_items=args.n_items,
        n_users=args.n_users,
        seed=args.seed,
    )
    mapping = {
        ring.pseudonym_under(raw, args.from_version): ring.pseudonymize(raw)
        for raw in dataset.users()
    }
    store = FeatureStore.from_url(args.database_url)
    try:
        store.migrate()
        renamed = store.rename_users(mapping)
    finally:
        store.close()
    print(json.dumps({"requested": len(mapping), "renamed": renamed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
