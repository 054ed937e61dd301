"""Print one request's trace as a tree, from the JSON-lines span files of the local stack.

    python scripts/trace_tree.py                      # the latest Recommend trace
    python scripts/trace_tree.py 4bf92f3577b34da6...  # one trace by id
    python scripts/trace_tree.py --dir var/traces --list   # recent trace ids

Each line shows the span name, the service that emitted it, its duration, its start offset
from the trace's start and the key attributes (candidate counts, versions, fallback reasons).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Runnable as a plain script from a checkout, without the package installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.orchestrator.traces import (
    build_tree,
    latest_trace_id,
    load_spans,
    render_tree,
    span_files,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trace_id", nargs="?", help="32 hex digits; default: the latest trace")
    parser.add_argument(
        "--dir",
        default=None,
        help="folder of <service>.jsonl files; default var/stack/traces (the local stack) "
        "when it exists, else var/traces (services started on their own)",
    )
    parser.add_argument(
        "--root", default="Recommend", help="with no id, the latest trace whose root has this"
    )
    parser.add_argument("--list", action="store_true", help="list recent trace ids and exit")
    args = parser.parse_args(argv)

    if args.dir is None:
        stack_dir = Path("var/stack/traces")
        args.dir = str(stack_dir if stack_dir.exists() else Path("var/traces"))
    files = span_files(Path(args.dir))
    if not files:
        print(f"no span files in {args.dir}", file=sys.stderr)
        return 1
    spans = load_spans(files)
    if args.list:
        roots = sorted((s for s in spans if s.parent_id is None), key=lambda s: s.start)
        for root in roots[-20:]:
            print(
                f"{root.trace_id}  {root.start:%H:%M:%S}  {root.duration_ms:8.1f} ms  {root.name}"
            )
        return 0
    trace_id = args.trace_id or latest_trace_id(spans, args.root)
    if trace_id is None:
        print("no matching trace found", file=sys.stderr)
        return 1
    roots = build_tree(spans, trace_id.lower())
    if not roots:
        print(f"trace {trace_id} not found in {args.dir}", file=sys.stderr)
        return 1
    print(f"trace {trace_id}")
    print(render_tree(roots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
