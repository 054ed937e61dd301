"""The load benchmark's accounting: bytes per hop and the report without gRPC runs."""

from __future__ import annotations

import math

from benchmarks.load import IN_PROCESS, HopBytes, Report
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


def test_report_of_the_in_process_run_alone_has_no_ratios() -> None:
    row = {
        "run": IN_PROCESS,
        "ok": 3,
        "rps": 10.0,
        "p50": 1.0,
        "p95": 2.0,
        "p99": 3.0,
        "degraded_stages": {},
        "error_codes": {},
    }
    report = Report([row], {}, {"x.Y": {"calls": 1.0, "request_bytes": 5, "response_bytes": 7}})
    assert math.isnan(report.p50_ratio)
    assert math.isnan(report.rps_ratio)
    assert "no gRPC/in-process ratios" in report.summary()
    assert "| x.Y | 1.00 | 5 | 7 |" in report.table()
