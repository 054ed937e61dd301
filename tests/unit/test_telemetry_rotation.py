"""Local span files are bounded: they rotate by size, keep a fixed number of old files, and
never split a JSON line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, cast

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from shared.settings import ServiceSettings
from shared.telemetry import RotatingLineFile


def _files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir())}


def test_rotates_at_the_size_and_keeps_only_the_backups(tmp_path: Path) -> None:
    sink = RotatingLineFile(tmp_path / "svc.jsonl", max_bytes=100, backups=2)
    for n in range(40):
        sink.write(json.dumps({"n": n, "pad": "x" * 20}) + "\n")
    sink.close()
    sizes = _files(tmp_path)
    assert set(sizes) == {"svc.jsonl", "svc.jsonl.1", "svc.jsonl.2"}
    assert all(size <= 100 for size in sizes.values())
    # Newest in the live file, then .1, then .2; nothing older survives.
    read = [
        [json.loads(line)["n"] for line in (tmp_path / name).read_text().splitlines()]
        for name in ("svc.jsonl.2", "svc.jsonl.1", "svc.jsonl")
    ]
    flat = [n for chunk in read for n in chunk]
    assert flat == list(range(40 - len(flat), 40))


def test_appends_to_an_existing_file_and_counts_its_size(tmp_path: Path) -> None:
    path = tmp_path / "svc.jsonl"
    path.write_text("a" * 90 + "\n")
    sink = RotatingLineFile(path, max_bytes=100, backups=1)
    sink.write("b" * 20 + "\n")
    sink.close()
    assert (tmp_path / "svc.jsonl.1").read_text() == "a" * 90 + "\n"
    assert path.read_text() == "b" * 20 + "\n"


def test_a_line_longer_than_the_cap_is_written_whole(tmp_path: Path) -> None:
    sink = RotatingLineFile(tmp_path / "svc.jsonl", max_bytes=10, backups=0)
    sink.write("x" * 30 + "\n")
    sink.write("y" * 30 + "\n")
    sink.close()
    assert _files(tmp_path) == {"svc.jsonl": 31}
    assert (tmp_path / "svc.jsonl").read_text() == "y" * 30 + "\n"


def test_span_exporter_output_stays_under_the_cap(tmp_path: Path) -> None:
    sink = RotatingLineFile(tmp_path / "svc.jsonl", max_bytes=8192, backups=2)
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            ConsoleSpanExporter(
                out=cast(IO[str], sink), formatter=lambda s: s.to_json(indent=None) + "\n"
            )
        )
    )
    tracer = provider.get_tracer("test")
    for n in range(500):
        with tracer.start_as_current_span("request") as span:
            span.set_attribute("n", n)
    provider.shutdown()
    sink.close()
    sizes = _files(tmp_path)
    assert len(sizes) == 3
    assert sum(sizes.values()) <= 3 * 8192
    last = (tmp_path / "svc.jsonl").read_text().splitlines()
    assert json.loads(last[-1])["attributes"]["n"] == 499


def test_the_cap_is_a_setting_with_a_default() -> None:
    settings = ServiceSettings()
    assert settings.traces_max_bytes == 8 * 1024 * 1024
    assert settings.traces_backups == 2
    assert ServiceSettings(traces_max_bytes=65536, traces_backups=0).traces_backups == 0
