"""Reading the JSON-lines span files that shared.telemetry writes, and printing a trace tree.

Each process appends one span per line to ``<traces_dir>/<service>.jsonl``; a request's spans
are spread over several files and tied together by trace id and parent span id.

    python -m devstack.traces                      # the latest Recommend trace
    python -m devstack.traces 4bf92f3577b34da6...  # one trace by id
    python -m devstack.traces --dir var/traces --list   # recent trace ids

(``scripts/trace_tree.py`` is the same command.) Each line shows the span name, the service
that emitted it, its duration, its start offset from the trace's start and the key attributes
(candidate counts, versions, fallback reasons).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# Attributes worth a glance in the tree; everything else stays in the files.
KEY_PREFIXES = ("recsys.", "rpc.grpc.status_code", "rpc.method", "triton.", "db.")


@dataclass
class SpanRecord:
    """One finished span as exported, with the service that emitted it."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start: datetime
    end: datetime
    status: str
    kind: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    children: list[SpanRecord] = field(default_factory=list, repr=False)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000.0


def _hex(value: str | None) -> str | None:
    if not value:
        return None
    return value[2:] if value.startswith("0x") else value


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_span(line: str) -> SpanRecord:
    raw = json.loads(line)
    trace_id = _hex(raw["context"]["trace_id"])
    span_id = _hex(raw["context"]["span_id"])
    if trace_id is None or span_id is None:
        raise ValueError("span without trace or span id")
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=_hex(raw.get("parent_id")),
        name=raw["name"],
        service=raw.get("resource", {}).get("attributes", {}).get("service.name", "?"),
        start=_time(raw["start_time"]),
        end=_time(raw["end_time"]),
        status=raw.get("status", {}).get("status_code", "UNSET"),
        kind=str(raw.get("kind", "")).removeprefix("SpanKind.").lower(),
        attributes=dict(raw.get("attributes") or {}),
        events=list(raw.get("events") or []),
    )


def load_spans(paths: Iterable[Path]) -> list[SpanRecord]:
    """Every parsable span in the given files; a half-written last line is skipped."""
    spans = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    spans.append(parse_span(line))
                except (ValueError, KeyError):
                    continue
    return spans


def span_files(traces_dir: Path) -> list[Path]:
    return sorted(p for p in traces_dir.glob("*.jsonl") if not p.name.endswith(".metrics.jsonl"))


def latest_trace_id(spans: Sequence[SpanRecord], root_name: str | None = None) -> str | None:
    """The trace whose root (optionally named ``root_name``) started last."""
    roots = [s for s in spans if s.parent_id is None]
    if root_name:
        roots = [s for s in roots if root_name in s.name]
    if not roots:
        return None
    return max(roots, key=lambda s: s.start).trace_id


def build_tree(spans: Sequence[SpanRecord], trace_id: str) -> list[SpanRecord]:
    """The roots of one trace with ``children`` filled in, ordered by start time.

    A span whose parent is missing (not exported yet, or from an unconfigured process) is
    shown as a root rather than dropped.
    """
    mine = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in mine}
    for s in mine:
        s.children = []
    roots = []
    for s in sorted(mine, key=lambda s: s.start):
        parent = by_id.get(s.parent_id) if s.parent_id else None
        if parent is None:
            roots.append(s)
        else:
            parent.children.append(s)
    return roots


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def render_tree(roots: Sequence[SpanRecord]) -> str:
    """Lines like ``├─ orchestrator.ranker [orchestrator] 812.4 ms  recsys.candidates=50``."""
    if not roots:
        return "(no spans)"
    origin = min(r.start for r in roots)
    lines: list[str] = []

    def walk(span: SpanRecord, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        offset = (span.start - origin).total_seconds() * 1000.0
        attrs = "  ".join(
            f"{k}={_format_value(v)}"
            for k, v in sorted(span.attributes.items())
            if k.startswith(KEY_PREFIXES)
        )
        status = "" if span.status in ("UNSET", "OK") else f" !{span.status}"
        kind = f" {span.kind}" if span.kind in ("client", "server") else ""
        lines.append(
            f"{prefix}{branch}{span.name} [{span.service}{kind}] "
            f"{span.duration_ms:.1f} ms (+{offset:.1f}){status}" + (f"  {attrs}" if attrs else "")
        )
        child_prefix = prefix + ("" if top else ("   " if last else "│  "))
        for event in span.events:
            if event.get("name") == "degraded" or "fallback" in str(event.get("attributes", {})):
                ev = ", ".join(
                    f"{k}={v}" for k, v in sorted((event.get("attributes") or {}).items())
                )
                lines.append(f"{child_prefix}  * event {event.get('name')}: {ev}")
        for i, child in enumerate(span.children):
            walk(child, child_prefix, i == len(span.children) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    return "\n".join(lines)


def trace_services(roots: Sequence[SpanRecord]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        span = stack.pop()
        seen.add(span.service)
        stack.extend(span.children)
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.traces",
        description="Print one request's trace as a tree, from the local stack's span files.",
    )
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
