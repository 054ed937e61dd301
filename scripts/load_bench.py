"""Load benchmark of the running local stack, side by side with the same services built
in-process (the harness is ``benchmarks.load``).

    bash scripts/run.sh --no-demo &            # or: python scripts/run_stack.py --no-demo
    python scripts/load_bench.py [--requests 200] [--concurrency 4] [--rate 4]
        [--max-seconds 120] [--record docs/benchmarks.md] [--in-process-only]

Runs a closed loop and an open loop over gRPC against the stack, then a closed loop against
the six services built in this process through their composition roots, configured as the
stack's processes are. Give --var, --base-port, --triton-grpc-port, --ranker-backend,
--candidates and --deadline-s as the stack was started: the in-process services are
configured from them. Prints a Markdown table and the gRPC/in-process ratios; with --record,
appends them to a file under a dated heading.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks import load
from devstack.stack import Layout

ROOT = Path(__file__).resolve().parent.parent
# The stack's own defaults (ports, ranker backend, candidate count, deadline), which Layout
# reads from the services' settings classes.
STACK = {f.name: f.default for f in dataclasses.fields(Layout)}
RUN = {f.name: f.default for f in dataclasses.fields(load.LoadConfig)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python scripts/load_bench.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--var", default=str(ROOT / "var" / "stack"), help="the stack's folder")
    p.add_argument("--base-port", type=int, default=STACK["base_port"])
    p.add_argument("--triton-grpc-port", type=int, default=STACK["triton_grpc_port"])
    p.add_argument("--ranker-backend", choices=["triton", "local"], default=STACK["ranker_backend"])
    p.add_argument(
        "--candidates", type=int, default=STACK["candidate_count"], help="as the stack was started"
    )
    p.add_argument(
        "--feature-store-url",
        default="",
        help="the feature store's SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db); "
        "default: the embedded SQLite file in --var; give it as the stack was started",
    )
    p.add_argument(
        "--deadline-s",
        type=float,
        default=STACK["default_deadline_s"],
        help="as the stack was started; also each gRPC call's deadline",
    )
    p.add_argument("--requests", type=int, default=RUN["requests"], help="per run")
    p.add_argument("--concurrency", type=int, default=RUN["concurrency"])
    p.add_argument("--rate", type=float, default=RUN["rate"], help="open-loop arrivals per second")
    p.add_argument("--max-seconds", type=float, default=RUN["max_s"], help="per run")
    p.add_argument(
        "--users", type=int, default=RUN["users"], help="synthetic shoppers user-00000.."
    )
    p.add_argument("--k", type=int, default=RUN["k"])
    p.add_argument("--tradeoff", type=float, default=RUN["tradeoff"], help="DPP/MMR trade-off")
    p.add_argument("--seed", type=int, default=RUN["seed"])
    p.add_argument("--record", type=Path, default=None, help="append the table to this file")
    p.add_argument(
        "--in-process-only",
        action="store_true",
        help="only the in-process run (no stack needed; for a profiler such as py-spy)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = sys.argv[1:] if argv is None else argv
    ns = parser.parse_args(args)
    if ns.json:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
    try:
        config = load.LoadConfig(
            requests=ns.requests,
            concurrency=ns.concurrency,
            rate=ns.rate,
            max_s=ns.max_seconds,
            users=ns.users,
            k=ns.k,
            tradeoff=ns.tradeoff,
            seed=ns.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    layout = Layout(
        root=ROOT,
        var=Path(ns.var).resolve(),
        base_port=ns.base_port,
        triton_grpc_port=ns.triton_grpc_port,
        ranker_backend=ns.ranker_backend,
        candidate_count=ns.candidates,
        default_deadline_s=ns.deadline_s,
        feature_store_url=ns.feature_store_url,
    )
    # The in-process ranker loads its tokenizer (and, with the local backend, the model)
    # from the artefact, never from the Hub, as the stack's processes do.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The in-process services log each degraded stage; the table counts them instead.
    logging.basicConfig(level=logging.ERROR)
    try:
        report = asyncio.run(
            load.run(
                layout,
                config,
                progress=lambda line: print(line, flush=True),
                over_grpc=not ns.in_process_only,
            )
        )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(report.table())
    print(report.summary())
    if ns.json:
        result: dict[str, Any] = report.as_json()
        ns.json.write_text(json.dumps(result, indent=2))
    if ns.record:
        command = " ".join(["python scripts/load_bench.py", *args])
        load.record(ns.record, report, command=command, layout=layout, config=config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
