"""The orchestrator reports the age of the DP popularity release it serves: a gauge for
SREs' alerts and a span attribute on each request served from the cached list."""

from __future__ import annotations

import datetime as dt

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.orchestrator.clients import popular_items_from_proto
from services.orchestrator.domain import ItemFeatures, PopularItems
from services.orchestrator.popularity import PopularityCache
from shared.gen.acme.recsys.v1 import common_pb2, feature_store_pb2

RELEASED = dt.datetime(2026, 3, 1, 0, 17, tzinfo=dt.UTC)
NOW = RELEASED + dt.timedelta(hours=26)
ITEM = ItemFeatures(item_id="A", title="a", category_path=("x",))


def _ages(reader: InMemoryMetricReader) -> list[float]:
    data = reader.get_metrics_data()
    return [
        point.value
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "recsys.orchestrator.popularity_release_age"
        for point in metric.data.data_points
    ]


async def test_release_age_gauge_and_span_attribute() -> None:
    answers = [
        PopularItems((ITEM,), ""),  # the catalog before the first release
        PopularItems((ITEM,), "r1", RELEASED),
    ]

    async def fetch() -> PopularItems:
        return answers.pop(0)

    reader = InMemoryMetricReader()
    cache = PopularityCache(
        fetch, 60.0, now=lambda: NOW, meter=MeterProvider([reader]).get_meter("t")
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")

    assert await cache.refresh()
    assert cache.release_age_s() is None
    assert _ages(reader) == []  # no release, no age: absent, not zero
    with tracer.start_as_current_span("before"):
        cache.top(1)

    assert await cache.refresh()
    assert cache.release_age_s() == 26 * 3600
    assert _ages(reader) == [26 * 3600]
    with tracer.start_as_current_span("after"):
        assert cache.top(1) == [ITEM]
    spans = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    assert "recsys.popularity_release_age_s" not in spans["before"]
    assert spans["after"]["recsys.popularity_release_age_s"] == 26 * 3600


def test_release_time_is_carried_from_the_response() -> None:
    response = feature_store_pb2.GetPopularItemsResponse(
        items=[common_pb2.ItemFeatures(item_id="A", title="a")], release_id="r1"
    )
    assert popular_items_from_proto(response).release_time is None
    response.release_time.FromDatetime(RELEASED)
    assert popular_items_from_proto(response).release_time == RELEASED
