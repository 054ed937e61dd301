"""Re-keying job after a key rotation: ``python -m services.privacy_gateway.rekey``.

Stored data is keyed by pseudonyms of the old key version. Since no table from raw id to
pseudonym exists (by design), the job reads the raw ids from the system of record (a file or
stdin, one id per line, e.g. an export of the accounts table piped straight in), computes
``old pseudonym -> new pseudonym`` in memory a batch at a time, and hands each batch to the
feature store's ``FeatureStore.rename_users``. Ids without data under the old key are ignored
by the store. Nothing but counts is printed or logged.

Procedure: ``keys rotate`` -> restart the gateways (new traffic gets the new pseudonyms) ->
run this job (the store merges histories that started under the new key) -> after the grace
window, ``keys prune``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.privacy_gateway.pseudonym import KeyRing, load_key_ring

Rename = Callable[[Mapping[str, str]], int]


@dataclass(frozen=True)
class RekeyResult:
    ids_read: int
    mappings: int
    renamed: int


def _batches(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for line in ids:
        raw = line.strip()
        if raw:
            batch.append(raw)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def rekey(
    ring: KeyRing,
    raw_ids: Iterable[str],
    rename: Rename,
    *,
    from_versions: Sequence[str] | None = None,
    batch_size: int = 1000,
) -> RekeyResult:
    """Map every id's pseudonym under each old version to its pseudonym under the active one.

    Each call of ``rename`` gets a one-to-one mapping for a single old version, as the store
    requires; old versions default to every non-active version still in the ring.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    versions = list(from_versions or [v.version for v in ring.versions])
    versions = [v for v in versions if v != ring.active_version]
    for version in versions:
        ring.pseudonym_under("", version)  # raises on an unknown version before any work
    read = mapped = renamed = 0
    for batch in _batches(raw_ids, batch_size):
        unique = list(dict.fromkeys(batch))
        read += len(batch)
        new = [ring.pseudonymize(raw) for raw in unique]
        for version in versions:
            mapping = {
                ring.pseudonym_under(raw, version): n for raw, n in zip(unique, new, strict=True)
            }
            mapped += len(mapping)
            renamed += rename(mapping)
    return RekeyResult(read, mapped, renamed)


def _feature_store_rename(database_url: str | None) -> tuple[Rename, Callable[[], None]]:
    # Imported lazily: the gateway itself never depends on the feature store's code.
    from services.feature_store.config import FeatureStoreSettings
    from services.feature_store.store import FeatureStore

    url = database_url or FeatureStoreSettings().database_url  # type: ignore[call-arg]
    store = FeatureStore.from_url(url)
    return store.rename_users, store.close


def _nothing_to_close() -> None:
    return None


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.privacy_gateway.rekey")
    parser.add_argument("--keys", default="var/keys/pseudonym-keys.json", help="key ring file")
    parser.add_argument("--ids", default="-", help="file of raw user ids, one a line; - = stdin")
    parser.add_argument(
        "--from-version",
        action="append",
        help="old key version to re-key from (repeatable); default: all non-active versions",
    )
    parser.add_argument(
        "--database-url",
        help="feature store database; default RECSYS_FEATURE_STORE_DATABASE_URL or its default",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--dry-run", action="store_true", help="count, rename nothing")
    args = parser.parse_args(argv)

    # pseudonym_under ignores the grace window: re-keying may run until the version is pruned.
    ring = load_key_ring(args.keys)
    if args.dry_run:
        rename: Rename = len
        close: Callable[[], None] = _nothing_to_close
    else:
        rename, close = _feature_store_rename(args.database_url)
    with contextlib.ExitStack() as stack:
        stack.callback(close)
        source = (
            (stdin or sys.stdin)
            if args.ids == "-"
            else stack.enter_context(Path(args.ids).open(encoding="utf-8"))
        )
        result = rekey(
            ring, source, rename, from_versions=args.from_version, batch_size=args.batch_size
        )
    outcome = "dry run, nothing renamed" if args.dry_run else f"{result.renamed} users renamed"
    print(
        f"read {result.ids_read} ids; {result.mappings} old pseudonyms mapped to "
        f"{ring.active_version}; {outcome}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
