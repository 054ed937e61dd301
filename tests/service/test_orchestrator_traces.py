"""The trace tree printer over real span files written by the OpenTelemetry SDK exporter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from devstack.traces import (
    build_tree,
    latest_trace_id,
    load_spans,
    render_tree,
    span_files,
    trace_services,
)

REPO = Path(__file__).resolve().parents[2]


def _provider(service: str, folder: Path) -> TracerProvider:
    out = (folder / f"{service}.jsonl").open("a", buffering=1)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    # The same one-span-per-line format shared.telemetry writes.
    provider.add_span_processor(
        SimpleSpanProcessor(
            ConsoleSpanExporter(out=out, formatter=lambda s: s.to_json(indent=None) + "\n")
        )
    )
    return provider


def _write_two_service_trace(folder: Path) -> str:
    front = _provider("orchestrator", folder).get_tracer("t")
    back = _provider("ranker", folder).get_tracer("t")
    with front.start_as_current_span("Recommend", kind=trace.SpanKind.SERVER) as root:
        with front.start_as_current_span("orchestrator.ranker") as stage:
            stage.set_attribute("recsys.candidates", 50)
            stage.set_attribute("user.secret", "not shown")
            stage.add_event("degraded", {"recsys.reason": "unavailable"})
            # The ranker is another process: its span's parent arrives by context propagation.
            with back.start_as_current_span("ScoreCandidates", kind=trace.SpanKind.SERVER):
                pass
        with front.start_as_current_span("orchestrator.reranker"):
            pass
    return format(root.get_span_context().trace_id, "032x")


def test_tree_links_spans_across_service_files(tmp_path: Path) -> None:
    trace_id = _write_two_service_trace(tmp_path)
    (tmp_path / "orchestrator.metrics.jsonl").write_text('{"not": "a span"}\n')
    with (tmp_path / "ranker.jsonl").open("a") as f:
        f.write('{"name": "half-writ')  # a process killed mid-line must not break reading
    files = span_files(tmp_path)
    assert [p.name for p in files] == ["orchestrator.jsonl", "ranker.jsonl"]
    spans = load_spans(files)
    assert len(spans) == 4
    assert latest_trace_id(spans, "Recommend") == trace_id

    roots = build_tree(spans, trace_id)
    assert [r.name for r in roots] == ["Recommend"]
    assert [c.name for c in roots[0].children] == ["orchestrator.ranker", "orchestrator.reranker"]
    ranker_stage = roots[0].children[0]
    assert [c.service for c in ranker_stage.children] == ["ranker"]
    assert trace_services(roots) == {"orchestrator", "ranker"}

    text = render_tree(roots)
    lines = text.splitlines()
    assert lines[0].startswith("Recommend [orchestrator server]")
    assert "recsys.candidates=50" in text
    assert "user.secret" not in text
    assert "* event degraded: recsys.reason=unavailable" in text
    assert any(line.lstrip("│ ").startswith("└─ ScoreCandidates [ranker server]") for line in lines)


def test_orphans_are_shown_as_roots_and_unknown_traces_are_empty(tmp_path: Path) -> None:
    trace_id = _write_two_service_trace(tmp_path)
    spans = [s for s in load_spans(span_files(tmp_path)) if s.name != "orchestrator.ranker"]
    roots = build_tree(spans, trace_id)
    assert {r.name for r in roots} == {"Recommend", "ScoreCandidates"}
    assert build_tree(spans, "0" * 32) == []
    assert render_tree([]) == "(no spans)"


def test_script_prints_latest_trace_and_fails_without_files(tmp_path: Path) -> None:
    trace_id = _write_two_service_trace(tmp_path)
    script = str(REPO / "scripts" / "trace_tree.py")
    ok = subprocess.run(
        [sys.executable, script, "--dir", str(tmp_path)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == f"trace {trace_id}"
    listed = subprocess.run(
        [sys.executable, script, "--dir", str(tmp_path), "--list"], capture_output=True, text=True
    )
    assert trace_id in listed.stdout
    missing = subprocess.run(
        [sys.executable, script, "--dir", str(tmp_path / "none")], capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "no span files" in missing.stderr
    unknown = subprocess.run(
        [sys.executable, script, "--dir", str(tmp_path), "f" * 32], capture_output=True, text=True
    )
    assert unknown.returncode == 1
