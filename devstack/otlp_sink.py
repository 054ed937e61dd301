"""A minimal OTLP/HTTP trace receiver that appends spans to ``<dir>/<service>.jsonl``.

Triton exports its spans only over OTLP (it has no file exporter in the format our services
write). In Kubernetes the OpenTelemetry Collector receives them; the local stack, which has
no collector, runs this sink so Triton's spans land next to the other services' span files and
``scripts/trace_tree.py`` shows them in the same tree (Triton joins the caller's trace from the
``traceparent`` header the ranker sends).

    python -m devstack.otlp_sink --port 4318 --dir var/stack/traces

Accepts ``POST /v1/traces`` as OTLP JSON (what Triton sends) or protobuf.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

# OTLP span kinds by number, as the SDK's exporter names them in our span files.
_KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
MAX_BODY = 8 * 1024 * 1024


def _iso(nanos: str | int) -> str:
    stamp = datetime.fromtimestamp(int(nanos) / 1e9, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _value(v: Mapping[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return None


def _attrs(items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items}


def _hex_id(value: str) -> str:
    """OTLP JSON ids are hex (unlike protobuf's canonical JSON, which would be base64)."""
    int(value, 16)  # ValueError for anything else
    return "0x" + value.lower()


def spans_from_otlp_json(payload: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(service name, span in the SDK's ``to_json`` layout) for every span of an export."""
    for resource_spans in payload.get("resourceSpans", []):
        resource = _attrs(resource_spans.get("resource", {}).get("attributes", []))
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                parent = span.get("parentSpanId")
                yield (
                    service,
                    {
                        "name": span.get("name", ""),
                        "context": {
                            "trace_id": _hex_id(span["traceId"]),
                            "span_id": _hex_id(span["spanId"]),
                        },
                        "kind": f"SpanKind.{_KINDS.get(int(span.get('kind', 0)), 'INTERNAL')}",
                        "parent_id": _hex_id(parent) if parent else None,
                        "start_time": _iso(span["startTimeUnixNano"]),
                        "end_time": _iso(span["endTimeUnixNano"]),
                        "status": {
                            "status_code": _STATUS.get(
                                int(span.get("status", {}).get("code", 0)), "UNSET"
                            )
                        },
                        "attributes": _attrs(span.get("attributes", [])),
                        "events": [
                            {
                                "name": e.get("name", ""),
                                "timestamp": _iso(e["timeUnixNano"]),
                                "attributes": _attrs(e.get("attributes", [])),
                            }
                            for e in span.get("events", [])
                        ],
                        "links": [],
                        "resource": {"attributes": resource, "schema_url": ""},
                    },
                )


def decode(body: bytes, content_type: str) -> dict[str, Any]:
    if "protobuf" in content_type:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        payload = json_format.MessageToDict(request, use_integers_for_enums=True)
        # Protobuf's JSON mapping writes bytes as base64; OTLP JSON wants hex ids.
        for rs in payload.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
        return dict(payload)
    return dict(json.loads(body))


class SpanWriter:
    """Appends spans to one file per service, one JSON object per line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, payload: Mapping[str, Any]) -> int:
        count = 0
        with self._lock:
            for service, span in spans_from_otlp_json(payload):
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in service)
                with (self.folder / f"{safe}.jsonl").open("a", encoding="utf-8") as f:
                    f.write(json.dumps(span) + "\n")
                count += 1
        return count


def make_server(host: str, port: int, writer: SpanWriter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # Readiness for the stack launcher: the sink is up when it answers.
            if self.path != "/health":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path.rstrip("/") != "/v1/traces" or not 0 < length <= MAX_BODY:
                self.send_error(404 if length else 400)
                return
            try:
                writer.write(decode(self.rfile.read(length), self.headers.get_content_type()))
            except (ValueError, KeyError, TypeError, DecodeError):
                self.send_error(400, "not an OTLP trace export")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per export would drown the stack's logs

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.otlp_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--dir", default="var/traces", help="folder of <service>.jsonl files")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, SpanWriter(Path(args.dir)))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"OTLP/HTTP trace sink on {args.host}:{args.port} -> {args.dir}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
