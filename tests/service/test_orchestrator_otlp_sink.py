"""The local stack's OTLP/HTTP span sink over a real HTTP server: Triton's JSON exports (the
payload below is what Triton 2.51 sent, trimmed to two spans), protobuf exports, and refusals.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from devstack.otlp_sink import SpanWriter, make_server
from devstack.traces import build_tree, load_spans, span_files

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRITON_EXPORT = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "triton"}}]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "triton-server"},
                    "spans": [
                        {
                            "attributes": [
                                {"key": "triton.model_name", "value": {"stringValue": "bert"}},
                                {"key": "triton.model_version", "value": {"intValue": "1"}},
                            ],
                            "startTimeUnixNano": "1795428095100706675",
                            "endTimeUnixNano": "1795428095163264856",
                            "events": [
                                {"name": "QUEUE_START", "timeUnixNano": "1795428095100730600"}
                            ],
                            "kind": 2,
                            "name": "ranker_bert",
                            "parentSpanId": "020983b62bfee4e7",
                            "spanId": "e884d94d9cd4eb50",
                            "traceId": TRACE,
                        },
                        {
                            "startTimeUnixNano": "1795428095100646773",
                            "endTimeUnixNano": "1795428095163331951",
                            "kind": 2,
                            "name": "InferRequest",
                            "parentSpanId": "b7ad6b7169203331",
                            "spanId": "020983b62bfee4e7",
                            "traceId": TRACE,
                        },
                    ],
                }
            ],
        }
    ]
}


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = make_server("127.0.0.1", 0, SpanWriter(tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_triton_json_export_becomes_a_subtree(sink: tuple[str, Path]) -> None:
    url, folder = sink
    assert _post(f"{url}/v1/traces", json.dumps(TRITON_EXPORT).encode(), "application/json") == 200
    spans = load_spans(span_files(folder))
    assert {s.service for s in spans} == {"triton"}
    roots = build_tree(spans, TRACE)
    # The caller's span (b7ad...) lives in another file, so InferRequest is the local root.
    assert [r.name for r in roots] == ["InferRequest"]
    assert roots[0].parent_id == "b7ad6b7169203331"
    child = roots[0].children[0]
    assert child.name == "ranker_bert"
    assert child.kind == "server"
    assert child.attributes == {"triton.model_name": "bert", "triton.model_version": 1}
    assert child.duration_ms == pytest.approx(62.558, abs=0.01)
    assert child.events[0]["name"] == "QUEUE_START"


def test_protobuf_export_is_accepted(sink: tuple[str, Path]) -> None:
    url, folder = sink
    export = trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[
                        common_pb2.KeyValue(
                            key="service.name", value=common_pb2.AnyValue(string_value="svc")
                        )
                    ]
                ),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        spans=[
                            trace_pb2.Span(
                                trace_id=bytes.fromhex(TRACE),
                                span_id=bytes.fromhex("1111111111111111"),
                                name="op",
                                kind=trace_pb2.Span.SPAN_KIND_CLIENT,
                                start_time_unix_nano=1_000_000_000,
                                end_time_unix_nano=1_500_000_000,
                                status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR),
                            )
                        ]
                    )
                ],
            )
        ]
    )
    status = _post(f"{url}/v1/traces", export.SerializeToString(), "application/x-protobuf")
    assert status == 200
    (span,) = load_spans([folder / "svc.jsonl"])
    assert (span.trace_id, span.span_id, span.parent_id) == (TRACE, "1111111111111111", None)
    assert (span.kind, span.status, span.duration_ms) == ("client", "ERROR", 500.0)


def test_refusals_and_health(sink: tuple[str, Path]) -> None:
    url, folder = sink
    assert _post(f"{url}/v1/traces", b"not json", "application/json") == 400
    assert _post(f"{url}/v1/traces", b"", "application/json") == 400
    assert _post(f"{url}/v1/traces", b"\xff\x01garbage", "application/x-protobuf") == 400
    no_ids = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}
    assert _post(f"{url}/v1/traces", json.dumps(no_ids).encode(), "application/json") == 400
    assert _post(f"{url}/v1/metrics", b"{}", "application/json") == 404
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/other", timeout=5)
    assert err.value.code == 404
    assert span_files(folder) == []
