"""The one resolver from ``--data`` to a Dataset: a folder in the interchange format
(shared.data.format) or a built-in name.

The built-in names are the importers of shared.data.synthetic, shared.data.online_retail and
shared.data.instacart run on their default inputs; they give the Dataset that
``python -m offline.data import NAME OUT/`` writes and ``--data OUT/`` reads back (the
round-trip tests hold them to that), so no command has a loader of its own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from shared.data.types import Dataset

BUILTIN = ("synthetic", "online-retail", "instacart")


def _synthetic() -> Dataset:
    from shared.data import synthetic

    return synthetic.generate()


def _online_retail() -> Dataset:
    from shared.data import online_retail

    return online_retail.load()


def _instacart() -> Dataset:
    from shared.data import instacart

    return instacart.load()


_BUILTINS: dict[str, Callable[[], Dataset]] = {
    "synthetic": _synthetic,
    "online-retail": _online_retail,
    "instacart": _instacart,
}


def load_data(spec: str | Path, *, skip_bad_rows: bool = False) -> Dataset:
    """The dataset ``spec`` names: a built-in name, else a folder in the interchange format.

    A folder's bad rows fail the load (DataFormatError) unless ``skip_bad_rows``; what was
    skipped is in ``dataset.notes["load"]``.
    """
    text = str(spec)
    if text in _BUILTINS and not Path(text).is_dir():
        return _BUILTINS[text]()
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(
            f"--data {text!r} is neither a folder nor a built-in name ({', '.join(BUILTIN)})"
        )
    from shared.data.format import load_folder

    dataset, _ = load_folder(path, skip_bad_rows=skip_bad_rows)
    return dataset


def add_data_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    default: str | None = "synthetic",
    *,
    required: bool = False,
) -> None:
    """``--data PATH|NAME`` and ``--skip-bad-rows``, the same on every command."""
    shown = f"; default: {default}" if default else ""
    parser.add_argument(
        "--data",
        # The older spelling keeps working for the built-in names.
        "--dataset",
        dest="data",
        default=default,
        required=required,
        metavar="PATH|NAME",
        help="a folder with items.(csv|parquet)[.gz] and events.(csv|parquet)[.gz] (see "
        f"docs/data.md), or a built-in name: {', '.join(BUILTIN)}{shown}",
    )
    parser.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="drop and count rows that are not in the format instead of failing",
    )


def data_from_args(args: argparse.Namespace) -> Dataset:
    """Load ``args.data``; a DataFormatError becomes a one-message exit (status 2)."""
    from shared.data.format import DataFormatError

    try:
        dataset = load_data(args.data, skip_bad_rows=args.skip_bad_rows)
    except (DataFormatError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if "load" in dataset.notes:
        print(f"data {args.data}: {dataset.notes['load']}", file=sys.stderr)
    return dataset
