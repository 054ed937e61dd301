"""Feature store benchmark: queries, ingest and DP counts as users and events grow, on SQLite
and PostgreSQL (the harness is ``benchmarks.feature_store``).

    python scripts/bench_feature_store.py [--sizes 200,1000,4000] [--backends sqlite,postgresql]
        [--data synthetic|online-retail|instacart|FOLDER] [--repeats 200]
        [--postgres-url URL] [--record docs/benchmarks.md]

Prints a Markdown table, a row per backend and size (a real dataset is measured whole, once
per backend); with --record, appends it to a file under a dated heading.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import feature_store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python scripts/bench_feature_store.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="200,1000,4000", help="synthetic user counts")
    parser.add_argument("--backends", default=",".join(feature_store.BACKENDS))
    parser.add_argument(
        "--data",
        "--dataset",
        dest="data",
        default="synthetic",
        metavar="PATH|NAME",
        help="synthetic (sized by --sizes), another built-in name "
        f"({', '.join(feature_store.BUILTIN)}) or a data folder, measured whole",
    )
    parser.add_argument("--repeats", type=int, default=200, help="samples per latency figure")
    parser.add_argument("--postgres-url", default=feature_store.DEFAULT_POSTGRES_URL)
    parser.add_argument("--record", type=Path, default=None, help="append the table to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    ns = parser.parse_args(argv)
    backends = ns.backends.split(",")
    if unknown := sorted(set(backends) - set(feature_store.BACKENDS)):
        parser.error(f"unknown backend(s) {', '.join(unknown)}")
    try:
        sizes = [int(s) for s in ns.sizes.split(",")]
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if any(s < 1 for s in sizes):
        parser.error("--sizes must be at least 1")
    if ns.repeats < 1:
        parser.error("--repeats must be at least 1")
    results = feature_store.run(
        backends=backends,
        sizes=sizes,
        dataset=ns.data,
        repeats=ns.repeats,
        postgres_url=ns.postgres_url,
        progress=lambda line: print(f"... {line}", flush=True),
    )
    table = feature_store.markdown(results)
    print(table)
    if ns.record:
        command = (
            f"python scripts/bench_feature_store.py --sizes {ns.sizes} --backends {ns.backends} "
            f"--data {ns.data} --repeats {ns.repeats}"
        )
        feature_store.record(ns.record, table, command=command, dataset=ns.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
