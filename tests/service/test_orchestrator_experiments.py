"""Experiments and served lists over gRPC: the orchestrator built through its composition
root over the in-memory services of tests/unit/test_orchestrator_degradation. A variant's
settings reach the stages, the assignment is stated in the answer and on the request span,
a changed experiments file applies without a restart, and a store that cannot take the
served lists never fails Recommend."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

import grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.orchestrator.app import build_orchestrator
from services.orchestrator.domain import RecommendQuery, RerankMethod, ServedList
from services.orchestrator.downstream import DownstreamError
from shared.channels import create_channel
from shared.deadline import Budget
from shared.gen.acme.recsys.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.unit.test_orchestrator_degradation import SHOPPER, Dependencies, FakeClock, _settings

TREATMENT = {
    "version": "v1",
    "experiments": [
        {
            "name": "knobs",
            "salt": "service-test-salt",
            "variants": [
                {
                    "name": "treat",
                    "share": 1.0,
                    "method": "mmr",
                    "tradeoff": 0.9,
                    "candidate_count": 5,
                    "ranker_enabled": False,
                }
            ],
        }
    ],
}
CONTROL = {
    "version": "v2",
    "experiments": [
        {
            "name": "knobs",
            "salt": "service-test-salt",
            "variants": [{"name": "control", "share": 1.0}],
        }
    ],
}


def _write(path: Path, content: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content))
    os.replace(tmp, path)


async def test_a_variant_reaches_the_stages_and_a_new_file_applies_without_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "experiments.json"
    _write(path, TREATMENT)
    deps = Dependencies(FakeClock())
    recorded: list[ServedList] = []

    async def sink(lists: Sequence[ServedList], timeout_s: float) -> None:
        recorded.extend(lists)

    settings = _settings(port=0, experiments_file=str(path), experiments_poll_s=0.05)
    async with (
        build_orchestrator(settings, backends=deps, served_lists=sink) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        request = orchestrator_pb2.RecommendRequest(
            user_ref=SHOPPER, k=3, diversity=orchestrator_pb2.DiversitySettings(tradeoff=0.1)
        )
        treated = await stub.Recommend(request, timeout=5)
        rerank = deps.rerank_requests[-1]
        assert (rerank.method, rerank.tradeoff) == (RerankMethod.MMR, 0.9)
        assert len(rerank.candidates) == 5
        assert "score" not in deps.called()
        assert [(a.experiment, a.variant) for a in treated.experiment_assignments] == [
            ("knobs", "treat")
        ]
        assert treated.versions["experiments"] == "v1"
        assert treated.versions["stage_switches"] == (
            "ranker=off;reranker_method=RERANK_METHOD_UNSPECIFIED;candidates=5"
        )

        _write(path, CONTROL)
        await asyncio.sleep(0.1)
        deps.calls.clear()
        control = await stub.Recommend(request, timeout=5)
        rerank = deps.rerank_requests[-1]
        assert rerank.tradeoff == 0.1  # the request's own again
        assert len(rerank.candidates) == 8  # the settings' candidate_count
        assert "score" in deps.called()
        assert control.experiment_assignments[0].variant == "control"
        assert control.recommendation_id != treated.recommendation_id

        # Refused file: the last good experiments stay in force, the reason is kept.
        path.write_text('{"version": "v3", "experiments": [{"name": "x"}]}')
        await asyncio.sleep(0.1)
        still = await stub.Recommend(request, timeout=5)
        assert still.versions["experiments"] == "v2"
        assert app.experiments is not None
        assert "salt" in (app.experiments.error or "")

        # The request span states the assignment and the recommendation id.
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        with provider.get_tracer("test").start_as_current_span("request"):
            outcome = await app.pipeline.recommend(
                RecommendQuery(SHOPPER, 3, RerankMethod.UNSPECIFIED, 0.5),
                Budget.from_timeout(5.0, deps.clock),
            )
        attrs = dict(spans.get_finished_spans()[-1].attributes or {})
        assert attrs["recsys.experiment.knobs"] == "control"
        assert attrs["recsys.recommendation_id"] == outcome.recommendation_id
        assert app.served_lists is not None
        await app.served_lists.flush()
    by_id = {s.recommendation_id: s for s in recorded}
    assert by_id[treated.recommendation_id].method == "mmr"
    assert by_id[treated.recommendation_id].item_count == 3
    assert by_id[treated.recommendation_id].assignments == (("knobs", "treat"),)
    assert by_id[control.recommendation_id].assignments == (("knobs", "control"),)
    assert all(SHOPPER not in repr(s) for s in recorded)  # no user reference in a list


async def test_a_store_refusing_served_lists_never_fails_recommend() -> None:
    deps = Dependencies(FakeClock())
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")

    async def sink(lists: Sequence[ServedList], timeout_s: float) -> None:
        raise DownstreamError("feature_store", grpc.StatusCode.UNAVAILABLE, "down")

    async with (
        build_orchestrator(_settings(port=0), backends=deps, served_lists=sink, meter=meter) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        for _ in range(3):
            answer = await stub.Recommend(
                orchestrator_pb2.RecommendRequest(user_ref=SHOPPER, k=3), timeout=5
            )
            assert len(answer.items) == 3
            assert answer.recommendation_id
            assert not answer.experiment_assignments  # no experiments file
        assert app.served_lists is not None
        await app.served_lists.flush()
    failed = 0
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "recsys.orchestrator.served_lists":
                    for point in metric.data.data_points:
                        if dict(point.attributes or {}).get("outcome") == "failed":
                            failed += int(point.value)  # type: ignore[union-attr]
    assert failed == 3
