"""Write a dataset in the interchange format, or check a folder that claims to be in it.

    python -m offline.data import synthetic OUT/ [--n-items 2000 --n-users 500 --seed 7]
    python -m offline.data import online-retail FILE OUT/     # UCI Online Retail CSV(.gz)/XLSX
    python -m offline.data import instacart DIR OUT/          # Instacart 2017 CSV folder
    python -m offline.data check FOLDER [--skip-bad-rows]

(``recsys-data`` is the same command once the project is installed.) OUT/ must not exist or be
empty; it appears only when both files are complete. Every command that reads data then
takes ``--data OUT/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.data.format import SUFFIXES, DataFormatError, load_folder, write_folder
from shared.data.types import Dataset


def _import(args: argparse.Namespace) -> Dataset:
    if args.source == "synthetic":
        from shared.data import synthetic

        return synthetic.generate(n_items=args.n_items, n_users=args.n_users, seed=args.seed)
    if args.source == "online-retail":
        from shared.data import online_retail

        return online_retail.load(args.input)
    from shared.data import instacart

    return instacart.load(args.input)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m offline.data",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:7]),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser("import", help="write a known dataset in the format")
    sources = imports.add_subparsers(dest="source", required=True)
    synthetic = sources.add_parser("synthetic", help="the deterministic synthetic shop")
    synthetic.add_argument("--n-items", type=int, default=2000)
    synthetic.add_argument("--n-users", type=int, default=500)
    synthetic.add_argument("--seed", type=int, default=7)
    retail = sources.add_parser("online-retail", help="a UCI Online Retail file")
    retail.add_argument("input", type=Path, help="CSV (optionally .gz) or XLSX")
    insta = sources.add_parser("instacart", help="an Instacart 2017 folder")
    insta.add_argument("input", type=Path, help="folder with products.csv, orders.csv, ...")
    for sub in (synthetic, retail, insta):
        sub.add_argument("out", type=Path, help="the folder to write")
        sub.add_argument(
            "--format",
            choices=[s.lstrip(".") for s in SUFFIXES],
            default="csv",
            help="file type of items and events (default csv)",
        )
    check = commands.add_parser("check", help="load a folder and report what it holds")
    check.add_argument("folder", type=Path)
    check.add_argument("--skip-bad-rows", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            dataset, report = load_folder(args.folder, skip_bad_rows=args.skip_bad_rows)
        else:
            dataset = _import(args)
            write_folder(dataset, args.out, suffix=f".{args.format}")
            dataset, report = load_folder(args.out)
    except (DataFormatError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "folder": str(args.folder if args.command == "check" else args.out),
                "items": len(dataset.items),
                "events": len(dataset.interactions),
                "users": len(dataset.users()),
                "rows": report.rows,
                "skipped": report.skipped,
            }
        )
    )
    return 0
