"""The served-list recorder: what a list says about the answer, batching, a full queue
dropping instead of waiting, and a bounded drain at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.orchestrator.attribution import ServedListRecorder, served_method
from services.orchestrator.domain import Candidate, Outcome, Reason, ServedList, Stage

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _outcome(*stages: Stage, reranker: str = "RERANK_METHOD_MMR") -> Outcome:
    outcome = Outcome(items=[Candidate(f"I{i}", stages=list(stages)) for i in range(3)])
    outcome.versions["reranker_method"] = reranker
    return outcome


def _counts(reader: InMemoryMetricReader) -> dict[str, int]:
    out: dict[str, int] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "recsys.orchestrator.served_lists":
                    for p in metric.data.data_points:
                        out[str(dict(p.attributes or {})["outcome"])] = int(p.value)  # type: ignore[union-attr]
    return out


def test_the_method_names_what_ordered_the_list() -> None:
    assert served_method(_outcome(Stage.RETRIEVAL, Stage.RANKER, Stage.RERANKER)) == "mmr"
    assert served_method(_outcome(Stage.RETRIEVAL, Stage.RANKER)) == "relevance_order"
    assert served_method(_outcome(Stage.POPULARITY)) == "popularity"
    flagged = _outcome()
    flagged.degrade(Stage.POPULARITY, Reason.NO_DP_RELEASE)
    assert served_method(flagged) == "catalog_order"


async def test_batches_a_full_queue_drops_and_the_drain_is_bounded() -> None:
    sent: list[list[ServedList]] = []
    slow = asyncio.Event()

    async def sink(lists: Sequence[ServedList], timeout_s: float) -> None:
        if slow.is_set():
            await asyncio.sleep(10)
        sent.append(list(lists))

    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    recorder = ServedListRecorder(
        sink, batch=2, queue=3, timeout_s=0.2, now=lambda: NOW, meter=meter
    )
    outcomes = [_outcome(Stage.POPULARITY) for _ in range(4)]
    for outcome in outcomes:
        recorder.record(outcome)  # the fourth finds the queue full
    await recorder.flush()
    assert [len(b) for b in sent] == [2, 1]
    assert [s.recommendation_id for b in sent for s in b] == [
        o.recommendation_id for o in outcomes[:3]
    ]
    assert sent[0][0] == ServedList(outcomes[0].recommendation_id, NOW, "popularity", 3, ())
    assert _counts(reader) == {"sent": 3, "dropped": 1}

    # Shutdown with a store that never answers: run() returns within about one timeout.
    slow.set()
    for outcome in outcomes[:2]:
        recorder.record(outcome)
    stop = asyncio.Event()
    stop.set()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await recorder.run(stop)
    assert loop.time() - started < 1.0
    # The cut batch counts as dropped: the one of the full queue before, and these two.
    assert _counts(reader)["dropped"] == 1 + 2
