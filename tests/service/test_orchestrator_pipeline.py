"""The orchestrator in-process against REAL downstream services started as processes (the
same ``python -m services.<name>`` commands as the local stack) on a small synthetic dataset.

Each degradation path is a real failure: a port nothing listens on (down), a TCP server that
never answers (late), or a killed feature store process. No downstream is simulated.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devstack.stack import (
    Layout,
    ServiceSpec,
    Stack,
    env_for,
    local_specs,
    release_popularity,
)
from offline.ranker import ltr
from services.orchestrator.app import Orchestrator, build_orchestrator
from services.orchestrator.config import OrchestratorSettings
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    feature_store_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from tests.integration.conftest import build_small_artefacts, dead_addr, small_layout

REPO = Path(__file__).resolve().parents[2]
USER = "user-00003"
K = 5
STAGE = common_pb2.Stage
VIEW = common_pb2.EVENT_TYPE_VIEW


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Stack]]:
    layout = small_layout(tmp_path_factory.mktemp("stack"), ranker_backend="local")
    build_small_artefacts(layout)
    specs = [s for s in local_specs(layout) if s.name != "orchestrator"]
    running = Stack(specs, layout.logs_dir, REPO, progress=lambda _: None)
    running.start()
    try:
        asyncio.run(running.wait_ready())
        asyncio.run(release_popularity(layout, progress=lambda _: None))
        yield layout, running
    finally:
        running.stop_all(grace_s=5)


class Observed:
    """Spans and metrics of one in-process orchestrator, read back from the SDK."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer = provider.get_tracer("test")
        self.reader = InMemoryMetricReader()
        self.meter = MeterProvider(metric_readers=[self.reader]).get_meter("test")

    def degraded_events(self) -> list[dict[str, object]]:
        return [
            dict(e.attributes or {})
            for s in self.spans.get_finished_spans()
            for e in s.events
            if e.name == "degraded"
        ]

    def fallback_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != "recsys.orchestrator.fallbacks":
                        continue
                    for point in metric.data.data_points:
                        attrs = dict(point.attributes or {})
                        key = (str(attrs["stage"]), str(attrs["reason"]))
                        counts[key] = int(point.value)  # type: ignore[union-attr]
        return counts


def _settings(layout: Layout, **overrides: object) -> OrchestratorSettings:
    values: dict[str, object] = {
        "port": 0,
        "privacy_gateway_addr": layout.addr("privacy_gateway"),
        "feature_store_addr": layout.addr("feature_store"),
        "retrieval_addr": layout.addr("retrieval"),
        "ranker_addr": layout.addr("ranker"),
        "reranker_addr": layout.addr("reranker"),
        "candidate_count": 20,
        # Generous: the CPU is shared and the BERT ranker is slow on it.
        "default_deadline_s": 20.0,
        "downstream_max_attempts": 1,
        "popularity_refresh_s": 0.5,
        "grace_period_s": 0.2,
    }
    values.update(overrides)
    return OrchestratorSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def observed() -> Observed:
    return Observed()


async def _start(settings: OrchestratorSettings, observed: Observed) -> Orchestrator:
    app = build_orchestrator(settings, tracer=observed.tracer, meter=observed.meter)
    await app.start()
    return app


async def _recommend(
    app: Orchestrator, timeout_s: float = 25.0, **kw: object
) -> orchestrator_pb2.RecommendResponse:
    fields: dict[str, object] = {"user_ref": USER, "k": K, **kw}
    request = orchestrator_pb2.RecommendRequest(**fields)  # type: ignore[arg-type]
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.Recommend(request, timeout=timeout_s, wait_for_ready=True)


async def _log(
    app: Orchestrator, events: list[orchestrator_pb2.ShopperEvent]
) -> orchestrator_pb2.LogEventsResponse:
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.LogEvents(
            orchestrator_pb2.LogEventsRequest(events=events), timeout=10, wait_for_ready=True
        )


async def _wait_cache(app: Orchestrator) -> None:
    for _ in range(100):
        if app.popularity.release_id:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the popularity cache never filled")


async def _item_features(app: Orchestrator, ids: list[str]) -> list[common_pb2.ItemFeatures]:
    """The catalog entries of ``ids``, from the stack's feature store."""
    async with create_channel(app.settings.feature_store_addr, max_attempts=1) as channel:
        stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        got = await stub.GetItemFeatures(
            feature_store_pb2.GetItemFeaturesRequest(item_ids=ids), timeout=10
        )
    return list(got.items)


def _degraded(response: orchestrator_pb2.RecommendResponse) -> dict[int, str]:
    return {d.stage: d.reason for d in response.degraded_stages}


@pytest.fixture
async def full(stack: tuple[Layout, Stack], observed: Observed) -> AsyncIterator[Orchestrator]:
    app = await _start(_settings(stack[0]), observed)
    yield app
    await app.stop()


async def test_full_pipeline_answers_with_every_stage(
    full: Orchestrator, observed: Observed
) -> None:
    response = await _recommend(
        full,
        diversity=orchestrator_pb2.DiversitySettings(
            method=common_pb2.RERANK_METHOD_DPP, tradeoff=0.6
        ),
    )
    assert not response.degraded_stages
    assert len(response.items) == K
    assert len({i.item_id for i in response.items}) == K
    for item in response.items:
        assert list(item.stages) == [
            STAGE.STAGE_RETRIEVAL,
            STAGE.STAGE_RANKER,
            STAGE.STAGE_RERANKER,
        ]
        assert item.title
        assert item.category_path
        # The ranker's BERT score replaced the retrieval score as relevance.
        assert item.relevance_score != pytest.approx(item.retrieval_score)
    assert response.versions["retrieval_index"] == "test-v1"
    assert response.versions["ranker_model"].endswith("/test-head-v1")
    assert response.versions["ranker_backend"] == "local"
    assert response.versions["reranker_method"] == "RERANK_METHOD_DPP"
    assert response.versions["pseudonym_key"]
    names = {s.name for s in observed.spans.get_finished_spans()}
    assert {
        "orchestrator.privacy_gateway",
        "orchestrator.user_features",
        "orchestrator.retrieval",
        "orchestrator.item_features",
        "orchestrator.ranker",
        "orchestrator.reranker",
    } <= names
    retrieval_span = next(
        s for s in observed.spans.get_finished_spans() if s.name == "orchestrator.retrieval"
    )
    assert (retrieval_span.attributes or {})["recsys.candidates"] == 20
    # The history's titles come with the candidates' features: one lookup, not two.
    assert "orchestrator.history_features" not in names
    lookup = next(
        s for s in observed.spans.get_finished_spans() if s.name == "orchestrator.item_features"
    )
    attributes = lookup.attributes or {}
    assert 20 < attributes["recsys.requested"] <= 20 + attributes["recsys.history_items"]
    # No span attribute carries the raw user reference or its pseudonym.
    for span in observed.spans.get_finished_spans():
        for value in (span.attributes or {}).values():
            assert USER not in str(value)


async def test_ranker_weight_blends_the_ranker_with_retrieval(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    none = orchestrator_pb2.DiversitySettings(method=common_pb2.RERANK_METHOD_NONE)
    answers = {}
    for weight in (0.0, 1.0):
        app = await _start(_settings(stack[0], ranker_weight=weight), observed)
        try:
            answers[weight] = await _recommend(app, diversity=none)
        finally:
            await app.stop()
    # Weight 0: the ranker ran, but the order is retrieval's.
    prior = answers[0.0]
    assert not prior.degraded_stages
    assert all(STAGE.STAGE_RANKER in i.stages for i in prior.items)
    scores = [i.retrieval_score for i in prior.items]
    assert scores == sorted(scores, reverse=True)
    # Weight 1: relevance is the raw cross-encoder logit, and the order follows it.
    ranked = answers[1.0]
    relevance = [i.relevance_score for i in ranked.items]
    assert relevance == sorted(relevance, reverse=True)
    assert [i.item_id for i in ranked.items] != [i.item_id for i in prior.items]


async def test_exclusions_and_purchases_are_never_recommended(full: Orchestrator) -> None:
    first = await _recommend(full)
    top = first.items[0].item_id
    excluded = await _recommend(full, excluded_item_ids=[top])
    assert top not in {i.item_id for i in excluded.items}

    ack = await _log(
        full,
        [
            orchestrator_pb2.ShopperEvent(
                event_id=f"purchase-{top}",
                user_ref=USER,
                item_id=top,
                type=common_pb2.EVENT_TYPE_PURCHASE,
            )
        ],
    )
    assert (ack.accepted_count, ack.duplicate_count) == (1, 0)
    after = await _recommend(full, exclude_purchased=True)
    assert top not in {i.item_id for i in after.items}
    assert not after.degraded_stages


async def test_shopper_without_history_is_served_from_the_dp_release(
    full: Orchestrator, observed: Observed
) -> None:
    await _wait_cache(full)
    request = orchestrator_pb2.RecommendRequest(
        user_ref="never-seen-shopper",
        k=K,
        diversity=orchestrator_pb2.DiversitySettings(
            method=common_pb2.RERANK_METHOD_DPP, tradeoff=0.5
        ),
    )
    async with create_channel(f"127.0.0.1:{full.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        response = await stub.Recommend(request, timeout=25, wait_for_ready=True)
    assert not response.degraded_stages
    assert len(response.items) == K
    # Candidates from the gateway's DP release (not retrieval's raw training counts), then
    # scored by the ranker and diversified by the reranker like any other answer.
    released = {f.item_id for f in full.popularity.items[:20]}
    for item in response.items:
        assert item.item_id in released
        assert list(item.stages) == [
            STAGE.STAGE_POPULARITY,
            STAGE.STAGE_RANKER,
            STAGE.STAGE_RERANKER,
        ]
        assert item.title
    assert response.versions["popularity_release"] == full.popularity.release_id
    assert "retrieval_index" in response.versions  # retrieval was asked and said cold start
    retrieval_span = next(
        s for s in observed.spans.get_finished_spans() if s.name == "orchestrator.retrieval"
    )
    assert (retrieval_span.attributes or {})["recsys.cold_start"] is True


async def test_log_events_is_idempotent_and_passes_store_validation_through(
    full: Orchestrator,
) -> None:
    event = orchestrator_pb2.ShopperEvent(
        event_id="view-once",
        user_ref="shopper-log-1",
        item_id="SKU000010",
        type=common_pb2.EVENT_TYPE_VIEW,
        quantity=2,
    )
    assert (await _log(full, [event])).accepted_count == 1
    again = await _log(full, [event])
    assert (again.accepted_count, again.duplicate_count) == (0, 1)
    bad = orchestrator_pb2.ShopperEvent(
        event_id="too-long-item", user_ref="shopper-log-1", item_id="X" * 400, type=1
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _log(full, [bad])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "item_id" in (err.value.details() or "")


async def test_every_item_says_why_over_grpc(full: Orchestrator) -> None:
    """Reasons through the real services: a new shopper's history is two logged events; every
    reason refers to that history, the item's own category or the DP release; a shopper the
    store has never seen is told the list is the release's popular items."""
    await _wait_cache(full)
    shopper, bought, viewed = "reasons-shopper", "SKU000010", "SKU000020"
    events = [
        orchestrator_pb2.ShopperEvent(
            event_id=f"reasons-{item}", user_ref=shopper, item_id=item, type=kind
        )
        for item, kind in ((bought, common_pb2.EVENT_TYPE_PURCHASE), (viewed, VIEW))
    ]
    assert (await _log(full, events)).accepted_count == 2
    history = await _recommend(full, user_ref=shopper, k=20)
    categories = {
        f.item_id: f.category_path[0]
        for f in (await _item_features(full, [bought, viewed]))
        if f.category_path
    }
    assert history.items
    assert not history.degraded_stages
    kinds = orchestrator_pb2.ReasonKind
    seen = set()
    for item in history.items:
        assert item.reasons, item.item_id
        for reason in item.reasons:
            assert reason.kind != kinds.Value("REASON_KIND_UNSPECIFIED")
            assert reason.text
            seen.add(reason.kind)
            if reason.kind == kinds.Value("REASON_KIND_SIMILAR_TO_HISTORY_ITEM"):
                assert reason.history_item_id in {bought, viewed} - {item.item_id}
            if reason.kind == kinds.Value("REASON_KIND_BOUGHT_BEFORE"):
                assert item.item_id == bought
            if reason.kind == kinds.Value("REASON_KIND_IN_FAVOURITE_CATEGORY"):
                assert reason.category == item.category_path[0]
                assert reason.category in categories.values()
            if reason.kind == kinds.Value("REASON_KIND_POPULAR_IN_CATEGORY"):
                assert reason.category == item.category_path[0]
            assert reason.kind not in {
                kinds.Value("REASON_KIND_COLD_START_POPULAR"),
                kinds.Value("REASON_KIND_POPULAR_FALLBACK"),
            }
    personal = {
        kinds.Value(n)
        for n in (
            "REASON_KIND_SIMILAR_TO_HISTORY_ITEM",
            "REASON_KIND_BOUGHT_BEFORE",
            "REASON_KIND_IN_FAVOURITE_CATEGORY",
        )
    }
    assert seen & personal
    cold = await _recommend(full, user_ref="never-seen-for-reasons")
    assert cold.items
    for item in cold.items:
        assert item.reasons[0].kind == kinds.Value("REASON_KIND_COLD_START_POPULAR")


async def test_ranker_down_keeps_retrieval_order(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    app = await _start(_settings(stack[0], ranker_addr=dead_addr()), observed)
    try:
        response = await _recommend(app, diversity=orchestrator_pb2.DiversitySettings(tradeoff=0.0))
    finally:
        await app.stop()
    assert _degraded(response) == {STAGE.STAGE_RANKER: "unavailable"}
    assert len(response.items) == K
    for item in response.items:
        assert item.relevance_score == pytest.approx(item.retrieval_score)
        assert STAGE.STAGE_RANKER not in item.stages
    # Trade-off 0 is pure relevance, here the retrieval score: retrieval order survives.
    scores = [i.retrieval_score for i in response.items]
    assert scores == sorted(scores, reverse=True)
    assert "ranker_model" not in response.versions
    assert {"recsys.stage": "ranker", "recsys.reason": "unavailable"}.items() <= (
        observed.degraded_events()[0].items()
    )
    assert observed.fallback_counts() == {("ranker", "unavailable"): 1}


@pytest.fixture
async def blackhole() -> AsyncIterator[str]:
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for w in held:
        w.close()
    server.close()


async def test_late_ranker_is_cut_off_within_the_callers_deadline(
    stack: tuple[Layout, Stack], observed: Observed, blackhole: str
) -> None:
    app = await _start(_settings(stack[0], ranker_addr=blackhole), observed)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await _recommend(app, timeout_s=4.0)
        took = loop.time() - started
    finally:
        await app.stop()
    assert _degraded(response) == {STAGE.STAGE_RANKER: "deadline_exceeded"}
    assert len(response.items) == K
    assert took < 4.0


async def test_reranker_down_gives_top_k_by_relevance(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    app = await _start(_settings(stack[0], reranker_addr=dead_addr()), observed)
    try:
        response = await _recommend(
            app, diversity=orchestrator_pb2.DiversitySettings(tradeoff=0.9, max_per_category=2)
        )
    finally:
        await app.stop()
    assert _degraded(response) == {STAGE.STAGE_RERANKER: "unavailable"}
    relevance = [i.relevance_score for i in response.items]
    assert relevance == sorted(relevance, reverse=True)
    assert [i.score for i in response.items] == relevance
    tops = [i.category_path[0] for i in response.items]
    assert max(tops.count(c) for c in set(tops)) <= 2
    for item in response.items:
        assert list(item.stages) == [STAGE.STAGE_RETRIEVAL, STAGE.STAGE_RANKER]


async def test_retrieval_down_serves_the_popularity_list(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    app = await _start(_settings(stack[0], retrieval_addr=dead_addr()), observed)
    try:
        await _wait_cache(app)
        response = await _recommend(app, excluded_item_ids=[app.popularity.items[0].item_id])
    finally:
        await app.stop()
    assert _degraded(response) == {STAGE.STAGE_RETRIEVAL: "unavailable"}
    assert len(response.items) == K
    assert all(list(i.stages) == [STAGE.STAGE_POPULARITY] for i in response.items)
    expected = [f.item_id for f in app.popularity.items[1 : K + 1]]
    assert [i.item_id for i in response.items] == expected
    assert response.versions["popularity_release"] == app.popularity.release_id


def _second_process(
    layout: Layout, name: str, settings: dict[str, object] | None = None
) -> tuple[ServiceSpec, Stack]:
    """A started copy of the stack's ``name`` service (same databases and artefacts) on a port
    of its own, named ``<name>_2``, so a test can kill it and leave the shared one up;
    ``settings`` override the copy's own (``{"ranking_model_dir": ...}``)."""
    base = next(s for s in local_specs(layout) if s.name == name)
    port = int(dead_addr().rsplit(":", 1)[1])
    spec = ServiceSpec(
        f"{name}_2",
        base.argv,
        {**base.env, **env_for(f"RECSYS_{name.upper()}_", {**(settings or {}), "port": port})},
        grpc_target=f"127.0.0.1:{port}",
    )
    own = Stack([spec], layout.logs_dir, REPO, progress=lambda _: None)
    own.start()
    return spec, own


async def test_a_ranker_with_a_learned_model_orders_and_explains_the_answer(
    stack: tuple[Layout, Stack], observed: Observed, tmp_path: Path
) -> None:
    """The whole path for real: the store's own-history interactions, retrieval's scores and
    DP popularity reach a ranker process serving a LightGBM model trained by
    offline.ranker.ltr; its relevance orders the answer and its contributions come with it."""
    layout, _ = stack
    args = ["--data", "synthetic", "--output", str(tmp_path), "--version", "ltr-e2e"]
    ltr.run(ltr.parse_args([*args, "--users", "120"]), progress=lambda _: None)
    spec, own = _second_process(layout, "ranker", {"ranking_model_dir": tmp_path})
    app = None
    try:
        await own.wait_ready()
        settings = _settings(layout, ranker_addr=spec.grpc_target, contributions_per_item=2)
        app = await _start(settings, observed)
        response = await _recommend(app)
    finally:
        if app is not None:
            await app.stop()
        own.stop_all(grace_s=2)
    assert not response.degraded_stages
    assert response.versions["ranking_model"] == "ltr-e2e"
    features = set(json.loads((tmp_path / "ltr-e2e" / "meta.json").read_text())["features"])
    for item in response.items:
        assert STAGE.STAGE_RANKER in item.stages
        assert len(item.contributions) == 2
        assert {c.feature for c in item.contributions} <= features
        assert abs(item.contributions[0].value) >= abs(item.contributions[1].value)
    ranker_span = next(
        s for s in observed.spans.get_finished_spans() if s.name == "orchestrator.ranker"
    )
    assert (ranker_span.attributes or {})["recsys.ranking_model"] == "ltr-e2e"


async def test_feature_store_death_falls_back_to_the_cached_popularity_list(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    layout, _ = stack
    # A second store process on the same database, so killing it leaves the shared one up.
    spec, own = _second_process(layout, "feature_store")
    app = None
    try:
        await own.wait_ready()
        app = await _start(_settings(layout, feature_store_addr=spec.grpc_target), observed)
        await _wait_cache(app)
        own.processes["feature_store_2"].kill()
        response = await _recommend(app)
    finally:
        if app is not None:
            await app.stop()
        own.stop_all(grace_s=2)
    assert _degraded(response) == {STAGE.STAGE_FEATURE_STORE: "unavailable"}
    assert [i.item_id for i in response.items] == [f.item_id for f in app.popularity.items[:K]]
    assert all(i.title for i in response.items)
    assert {"recsys.stage": "feature_store", "recsys.fallback": "popularity"}.items() <= (
        observed.degraded_events()[0].items()
    )


async def test_store_down_before_any_popularity_list_serves_the_catalog_order_flagged(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    app = await _start(_settings(stack[0], feature_store_addr=dead_addr()), observed)
    try:
        response = await _recommend(app)
    finally:
        await app.stop()
    assert _degraded(response) == {
        STAGE.STAGE_FEATURE_STORE: "unavailable",
        STAGE.STAGE_POPULARITY: "no_dp_release",
    }
    assert len(response.items) == K
    assert all(list(i.stages) == [STAGE.STAGE_RETRIEVAL] for i in response.items)
    # Retrieval's cold-start list: the catalog by item id, every score 0 (never its counts).
    item_ids = [i.item_id for i in response.items]
    assert item_ids == sorted(item_ids)
    assert all(i.score == i.relevance_score == i.retrieval_score == 0.0 for i in response.items)
    assert response.versions["retrieval_index"] == "test-v1"
    assert "popularity_release" not in response.versions


async def test_nothing_to_serve_is_unavailable(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    dead = dead_addr()
    app = await _start(_settings(stack[0], feature_store_addr=dead, retrieval_addr=dead), observed)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _recommend(app)
    finally:
        await app.stop()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no stage could produce" in (err.value.details() or "")


async def test_store_refusing_item_features_skips_the_ranker(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    """A store that answers user features but refuses the candidate lookup (here: a replica
    configured with a 10-id batch limit, below the 20 candidates: RESOURCE_EXHAUSTED) leaves
    no titles for the cross-encoder: retrieval order, the ranker flagged as skipped, the store
    as degraded."""
    layout, _ = stack
    base = next(s for s in local_specs(layout) if s.name == "feature_store")
    port = int(dead_addr().rsplit(":", 1)[1])
    spec = ServiceSpec(
        "feature_store_small_batch",
        base.argv,
        {
            **base.env,
            **env_for("RECSYS_FEATURE_STORE_", {"port": port, "max_item_batch": 10}),
        },
        grpc_target=f"127.0.0.1:{port}",
    )
    own = Stack([spec], layout.logs_dir, REPO, progress=lambda _: None)
    own.start()
    try:
        await own.wait_ready()
        app = await _start(_settings(layout, feature_store_addr=spec.grpc_target), observed)
        try:
            response = await _recommend(app)
        finally:
            await app.stop()
    finally:
        own.stop_all(grace_s=2)
    assert _degraded(response) == {
        STAGE.STAGE_FEATURE_STORE: "resource_exhausted",
        STAGE.STAGE_RANKER: "no_item_features",
    }
    assert len(response.items) == K
    for item in response.items:
        assert list(item.stages) == [STAGE.STAGE_RETRIEVAL, STAGE.STAGE_RERANKER]
        assert item.relevance_score == pytest.approx(item.retrieval_score)


def _span_ms(observed: Observed, name: str) -> list[float]:
    return [
        (s.end_time - s.start_time) / 1e6
        for s in observed.spans.get_finished_spans()
        if s.name == name and s.end_time is not None and s.start_time is not None
    ]


async def test_killed_reranker_is_skipped_by_its_breaker_and_rejoins_when_restarted(
    stack: tuple[Layout, Stack], observed: Observed
) -> None:
    layout, _ = stack
    spec, own = _second_process(layout, "reranker")
    app = None
    try:
        await own.wait_ready()
        # Retries on: a dead stage then costs a connect and a retry, what the breaker saves.
        settings = _settings(
            layout,
            reranker_addr=spec.grpc_target,
            downstream_max_attempts=2,
            breaker_consecutive_failures=3,
            breaker_open_s=60.0,
        )
        # The breaker's clock runs with the wall clock plus a skew the test moves forward,
        # so the open period cannot end by itself while the CPU ranker is slow.
        skew = [0.0]
        app = build_orchestrator(
            settings,
            tracer=observed.tracer,
            meter=observed.meter,
            clock=lambda: time.monotonic() + skew[0],
        )
        await app.start()
        assert app.breakers is not None
        assert not (await _recommend(app)).degraded_stages
        own.processes["reranker_2"].kill()
        for _ in range(3):
            response = await _recommend(app)
            assert _degraded(response) == {STAGE.STAGE_RERANKER: "unavailable"}
        assert app.breakers.states()["reranker"].value == "open"
        observed.spans.clear()
        for _ in range(9):
            response = await _recommend(app)
            assert _degraded(response) == {STAGE.STAGE_RERANKER: "unavailable"}
            assert len(response.items) == K
        # While open, the fallback costs no call: the reranker stage takes well under 1 ms
        # (median, as the CPU is shared with other work).
        open_ms = sorted(_span_ms(observed, "orchestrator.reranker"))
        assert open_ms[len(open_ms) // 2] < 1.0, open_ms
        spans = [
            s for s in observed.spans.get_finished_spans() if s.name == "orchestrator.reranker"
        ]
        assert all((s.attributes or {})["recsys.breaker.state"] == "open" for s in spans)
        own.start()
        await own.wait_ready()
        assert (await _recommend(app)).degraded_stages  # still open: the reranker is not asked
        for _ in range(50):
            # Each open period ends with one probe; the first ones may still meet the
            # channel's reconnect backoff and open the breaker again.
            skew[0] += settings.breaker_open_s
            response = await _recommend(app)
            if not response.degraded_stages:
                break
            await asyncio.sleep(0.2)
        assert not response.degraded_stages
        assert response.versions["reranker_method"]
        assert app.breakers.states()["reranker"].value == "closed"
    finally:
        if app is not None:
            await app.stop()
        own.stop_all(grace_s=2)
