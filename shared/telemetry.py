"""OpenTelemetry set-up: traces and metrics, exported by OTLP or to JSON-lines files.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific variable) set, spans and metrics
go to that collector, as the OpenTelemetry SDK's environment variables say. Otherwise each
process writes one span per line to ``<traces_dir>/<service>.jsonl`` (and metrics to
``<service>.metrics.jsonl``), which ``scripts/trace_tree.py`` prints as a tree for SREs.
Those files rotate by size like logging's RotatingFileHandler (``<name>.jsonl.1`` is the
newest rotated file, ``backups`` of them are kept), so a long-running local stack holds at most
``(backups + 1) * max_bytes`` per file; the OTLP path is untouched.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

log = logging.getLogger(__name__)

DEFAULT_TRACES_DIR = "var/traces"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_BACKUPS = 2


class RotatingLineFile:
    """A text sink for the console exporters that rotates by size, never splitting a line.

    The console exporters call only ``write`` and ``flush``, which is all it offers (hence the
    casts to ``IO[str]`` below). ``write`` is called by one exporter thread (the batch span
    processor's, or the periodic metric reader's), so no lock is needed.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._file: IO[str] = path.open("a", buffering=1, encoding="utf-8")
        self._size = path.stat().st_size

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, text: str) -> int:
        size = len(text.encode("utf-8"))
        if self._size and self._size + size > self.max_bytes:
            self._rotate()
        written = self._file.write(text)
        self._size += size
        return written

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("a", buffering=1, encoding="utf-8")
        self._size = 0


def _span_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


def otlp_configured() -> bool:
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


@dataclass
class Telemetry:
    """The providers of one process; ``shutdown`` flushes and closes the exporters."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    files: list[RotatingLineFile]

    def shutdown(self) -> None:
        self.tracer_provider.force_flush()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        for f in self.files:
            if not f.closed:
                f.close()


_installed: Telemetry | None = None


def setup_telemetry(
    service_name: str,
    *,
    traces_dir: str | None = None,
    metric_interval_ms: int = 30_000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    backups: int = DEFAULT_BACKUPS,
) -> Telemetry:
    """Install global tracer and meter providers for ``service_name``; idempotent per process.
    Local span and metric files rotate at ``max_bytes``, keeping ``backups`` old ones."""
    global _installed
    if _installed is not None:
        return _installed
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "acme-recsys",
            "service.version": os.environ.get("RECSYS_VERSION", "0.1.0"),
        }
    )
    files: list[RotatingLineFile] = []
    span_exporters: list[SpanExporter] = []
    metric_exporters: list[MetricExporter] = []
    if otlp_configured():
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        span_exporters.append(OTLPSpanExporter())
        metric_exporters.append(OTLPMetricExporter())
    if traces_dir or not otlp_configured():
        folder = Path(traces_dir or os.environ.get("RECSYS_TRACES_DIR", DEFAULT_TRACES_DIR))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            span_file = RotatingLineFile(folder / f"{service_name}.jsonl", max_bytes, backups)
            metric_file = RotatingLineFile(
                folder / f"{service_name}.metrics.jsonl", max_bytes, backups
            )
        except OSError as exc:  # read-only root file system and no collector: use stderr
            log.warning("cannot write traces to %s (%s); using stderr", folder, exc)
            span_exporters.append(ConsoleSpanExporter(service_name=service_name))
            metric_exporters.append(ConsoleMetricExporter())
        else:
            files += [span_file, metric_file]
            span_exporters.append(
                ConsoleSpanExporter(out=cast(IO[str], span_file), formatter=_span_line)
            )
            metric_exporters.append(
                ConsoleMetricExporter(
                    out=cast(IO[str], metric_file),
                    formatter=lambda m: m.to_json(indent=None) + "\n",
                )
            )
    tracer_provider = TracerProvider(resource=resource)
    for exporter in span_exporters:
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[
            PeriodicExportingMetricReader(e, export_interval_millis=metric_interval_ms)
            for e in metric_exporters
        ],
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _installed = Telemetry(tracer_provider, meter_provider, files)
    atexit.register(_installed.shutdown)
    return _installed


def current_trace_id() -> str:
    """The current span's W3C trace id as 32 hex digits, or "" outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
