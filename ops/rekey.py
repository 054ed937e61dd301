"""Re-keying job after a key rotation: ``python -m ops.rekey``.

Stored data is keyed by pseudonyms of the old key version. Since no table from raw id to
pseudonym exists (by design), the job reads the raw ids from their system of record: a file
or stdin, one id per line (``--ids``, e.g. an export of the accounts table piped straight
in), or the dataset the store was seeded from (``--data``). It computes ``old pseudonym ->
new pseudonym`` in memory a batch at a time and hands each batch to the feature store's
``rename_users``, which commits per chunk and skips users already renamed, so an interrupted
job is simply rerun. Ids without data under the old key are ignored by the store. Nothing but
counts is printed (one JSON line) or logged.

Procedure: ``python -m ops.keys rotate`` -> restart the gateways (new traffic gets the new
pseudonyms) -> run this job (the store merges histories that started under the new key) ->
after the grace window, ``python -m ops.keys prune``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ops import defaults
from ops.seed import add_database_argument
from services.feature_store.store import FeatureStore
from shared.data.datasets import add_data_arguments, data_from_args
from shared.keyring import KeyRing, KeyRingError, load_key_ring

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


def _feature_store_rename(database_url: str) -> tuple[Rename, Callable[[], None]]:
    store = FeatureStore.from_url(database_url)
    return store.rename_users, store.close


def _rename_nothing(mapping: Mapping[str, str]) -> int:
    return 0


def _nothing_to_close() -> None:
    return None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.rekey")
    parser.add_argument(
        "--keys",
        "--pseudonym-key-file",
        dest="keys",
        default=defaults.key_file(),
        help="key ring file (default: $RECSYS_PRIVACY_GATEWAY_KEY_FILE or the gateway's default)",
    )
    source = parser.add_argument_group("raw ids (one source)")
    source.add_argument("--ids", help="file of raw user ids, one a line; - = stdin (the default)")
    add_data_arguments(source, default=None)
    parser.add_argument(
        "--from-version",
        action="append",
        help="old key version to re-key from (repeatable); default: all non-active versions",
    )
    add_database_argument(parser)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--dry-run", action="store_true", help="count, rename nothing")
    args = parser.parse_args(argv)
    if args.ids is not None and args.data is not None:
        parser.error("give the raw ids by --ids or by --data, not both")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def _raw_ids(args: argparse.Namespace, stdin: TextIO, stack: contextlib.ExitStack) -> Iterable[str]:
    if args.data is not None:
        return data_from_args(args).users()
    if args.ids in (None, "-"):
        return stdin
    return stack.enter_context(Path(args.ids).open(encoding="utf-8"))


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    args = _parse_args(argv)
    if not Path(args.keys).exists():
        print(f"key ring {args.keys} not found", file=sys.stderr)
        return 2
    # pseudonym_under ignores the grace window: re-keying may run until the version is pruned.
    ring = load_key_ring(args.keys)
    if args.from_version and all(v == ring.active_version for v in args.from_version):
        print(
            f"{ring.active_version} is the active key version: nothing to re-key", file=sys.stderr
        )
        return 2
    try:
        for version in args.from_version or ():
            ring.pseudonym_under("", version)
    except KeyRingError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.dry_run:
        rename: Rename = _rename_nothing
        close: Callable[[], None] = _nothing_to_close
    else:
        rename, close = _feature_store_rename(args.database_url)
    with contextlib.ExitStack() as stack:
        stack.callback(close)
        result = rekey(
            ring,
            _raw_ids(args, stdin or sys.stdin, stack),
            rename,
            from_versions=args.from_version,
            batch_size=args.batch_size,
        )
    print(
        json.dumps(
            {
                "ids_read": result.ids_read,
                "mappings": result.mappings,
                "renamed": result.renamed,
                "to_version": ring.active_version,
                "dry_run": args.dry_run,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
