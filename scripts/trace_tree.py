"""Print one request's trace as a tree, from the JSON-lines span files of the local stack.

    python scripts/trace_tree.py                      # the latest Recommend trace
    python scripts/trace_tree.py 4bf92f3577b34da6...  # one trace by id
    python scripts/trace_tree.py --dir var/traces --list   # recent trace ids

Each line shows the span name, the service that emitted it, its duration, its start offset
from the trace's start and the key attributes (candidate counts, versions, fallback reasons).
"""

from __future__ import annotations

from devstack.traces import main

if __name__ == "__main__":
    raise SystemExit(main())
