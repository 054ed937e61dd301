"""The load benchmark's accounting: bytes per hop and the report without gRPC runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.load import IN_PROCESS, HopBytes, LoadConfig, Report, record
from devstack.stack import Layout
from shared.gen.acme.recsys.v1 import feature_store_pb2


def test_hop_bytes_are_serialized_sizes_per_request() -> None:
    hops = HopBytes()
    request = feature_store_pb2.GetItemFeaturesRequest(item_ids=["a", "bb"])
    response = feature_store_pb2.GetItemFeaturesResponse(missing_item_ids=["a"])
    for _ in range(4):
        hops.add("feature_store.GetItemFeatures", request, response)
    per = hops.per_request(2)["feature_store.GetItemFeatures"]
    assert per == {
        "calls": 2.0,
        "request_bytes": 2.0 * request.ByteSize(),
        "response_bytes": 2.0 * response.ByteSize(),
    }
    hops.reset()
    assert hops.per_request(1) == {}


ROW = {
    "run": IN_PROCESS,
    "ok": 3,
    "rps": 10.0,
    "p50": 1.0,
    "p95": 2.0,
    "p99": 3.0,
    "degraded_stages": {},
    "error_codes": {},
}


def test_report_of_the_in_process_run_alone_has_no_ratios() -> None:
    row = dict(ROW)
    report = Report([row], {}, {"x.Y": {"calls": 1.0, "request_bytes": 5, "response_bytes": 7}})
    assert math.isnan(report.p50_ratio)
    assert math.isnan(report.rps_ratio)
    assert "no gRPC/in-process ratios" in report.summary()
    assert "| x.Y | 1.00 | 5 | 7 |" in report.table()


def test_the_record_names_the_precision_the_stacks_triton_serves(tmp_path: Path) -> None:
    config = LoadConfig(requests=3, concurrency=1, rate=1.0, max_s=5.0)
    report = Report([dict(ROW)], {})
    doc = tmp_path / "bench.md"
    layout = Layout(root=tmp_path, var=tmp_path / "var", ranker_backend="triton")
    # Before the export nothing is recorded, and the heading says so.
    record(doc, report, command="python scripts/load_bench.py", layout=layout, config=config)
    assert "ranker backend triton, Triton CPU precision not recorded, N=" in doc.read_text()
    model = layout.ranker_dir / "v1" / "triton" / "cpu" / "ranker_bert"
    model.mkdir(parents=True)
    (layout.ranker_dir / "LATEST").write_text("v1\n")
    (model / "config.pbtxt").write_text('name: "ranker_bert"\n')
    (model / "cpu_precision.json").write_text(json.dumps({"chosen": "openvino_bf16"}))
    record(doc, report, command="python scripts/load_bench.py", layout=layout, config=config)
    assert "ranker backend triton, Triton CPU precision openvino_bf16, N=" in doc.read_text()
    local = Layout(root=tmp_path, var=tmp_path / "var", ranker_backend="local")
    record(doc, report, command="python scripts/load_bench.py", layout=local, config=config)
    assert doc.read_text().count("Triton CPU precision") == 2
    assert "(synthetic default, ranker backend local, N=" in doc.read_text()
