"""Every degradation path of Recommend, and LogEvents, driven through an in-memory backend.

``Dependencies`` implements the orchestrator's Backends protocol the way the five services
behave: it honours exclusions, answers cold start when no history item is indexed, and a
call that would take longer than its timeout costs the timeout and fails with
DEADLINE_EXCEEDED. Time is a fake clock, so a late dependency costs no wall time. The
process-level twins of these tests (real services, real failures) are
tests/service/test_orchestrator_pipeline.py and test_orchestrator_edges.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import ClassVar

import grpc
import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.orchestrator.blend import blend
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    Candidate,
    EventType,
    IngestResult,
    ItemFeatures,
    ItemLookup,
    Outcome,
    PopularItems,
    Pseudonyms,
    Reason,
    RecommendQuery,
    RerankedItem,
    RerankMethod,
    RerankRequest,
    RerankResult,
    RetrievalResult,
    RetrievedItem,
    Scores,
    ShopperContext,
    ShopperEvent,
    Stage,
    StoredEvent,
    UserFeatures,
)
from services.orchestrator.downstream import Backends, DownstreamError
from services.orchestrator.pipeline import Pipeline, PipelineMetrics
from services.orchestrator.popularity import PopularityCache
from services.retrieval.index import build_index
from services.retrieval.retriever import ServedIndex, retrieve_for_history
from shared.artefacts.retrieval import RetrievalArtefact
from shared.deadline import Budget
from shared.errors import DeadlineExceeded, Unavailable

CATEGORIES = ("garden", "kitchen", "toys")
# Twelve items; retrieval ranks them I00 first, the DP release ranks them I11 first.
CATALOG = {
    f"I{i:02d}": ItemFeatures(
        item_id=f"I{i:02d}",
        title=f"item {i}",
        category_path=(CATEGORIES[i % 3], "sub"),
        price=1.0 + i,
        dp_popularity=float(100 - 10 * (11 - i)),
    )
    for i in range(12)
}
RETRIEVAL_ORDER = [f"I{i:02d}" for i in range(12)]
POPULARITY_ORDER = list(reversed(RETRIEVAL_ORDER))
# The retrieval artefact's raw training counts: distinct primes, so every value derivable
# from them (a count, a share of the top or of the total) is recognisable in an answer.
RAW_COUNTS = dict(
    zip(
        ["I05", "I06", "I04", "I07", "I03", "I08", "I02", "I10", "I01", "I11", "I00", "I09"],
        [97, 89, 83, 79, 73, 71, 67, 61, 59, 53, 47, 43],
        strict=True,
    )
)
RAW_ORDER = list(RAW_COUNTS)
RELEASE = "release-3"
INDEX = "idx-7"
SHOPPER = "alice"
KNOWN = UserFeatures(
    known_user=True,
    recent_item_ids=("I03", "I07"),
    purchased_item_ids=("I01",),
    top_categories=("garden", "toys"),
)
# The ranker prefers items in reverse retrieval order (a clear, checkable disagreement).
RANKER_SCORES = {item: float(i) for i, item in enumerate(RETRIEVAL_ORDER)}


def _served_artefact() -> ServedIndex:
    """The real retrieval cold-start code over an artefact holding RAW_COUNTS."""
    vectors = np.eye(12, 4, dtype=np.float32) + 0.01
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    artefact = RetrievalArtefact(
        item_ids=list(RETRIEVAL_ORDER),
        item_vectors=vectors,
        user_weight=np.eye(4, dtype=np.float32),
        user_bias=np.zeros(4, dtype=np.float32),
        recency_decay=0.5,
        max_history=3,
        popularity=np.array([RAW_COUNTS[i] for i in RETRIEVAL_ORDER], dtype=np.int64),
    )
    return ServedIndex("raw", artefact, build_index(artefact, "flat"))


SERVED = _served_artefact()
BUDGET_S = 3.0
K = 4


class FakeClock:
    """Monotonic seconds that only move when a dependency spends time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Dependencies:
    """The five services in memory. ``down`` and ``failing`` make a method fail with a
    status; ``latency`` is the time a method takes (beyond its timeout it fails with
    DEADLINE_EXCEEDED after the timeout); ``stall`` is time lost after a method answered
    (a blocked event loop), which the timeout does not bound."""

    clock: FakeClock
    users: dict[str, UserFeatures] = field(default_factory=lambda: {f"v1.p-{SHOPPER}": KNOWN})
    down: set[str] = field(default_factory=set)
    failing: dict[str, grpc.StatusCode] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    stall: dict[str, float] = field(default_factory=dict)
    index: list[str] = field(default_factory=lambda: list(RETRIEVAL_ORDER))
    # "" is a store before its first DP release: the catalog in item-id order, popularity 0.
    release: str = RELEASE
    max_item_batch: int = 1000
    rerank_returns: int | None = None
    rerank_extra_ids: tuple[str, ...] = ()
    score_only: set[str] | None = None
    ingest_error: tuple[grpc.StatusCode, str] | None = None
    calls: list[tuple[str, float]] = field(default_factory=list)
    ranker_contexts: list[ShopperContext] = field(default_factory=list)
    rerank_requests: list[RerankRequest] = field(default_factory=list)
    stored: list[StoredEvent] = field(default_factory=list)

    SERVICE: ClassVar[dict[str, str]] = {
        "pseudonymize": "privacy_gateway",
        "user_features": "feature_store",
        "item_features": "feature_store",
        "popular_items": "feature_store",
        "ingest_events": "feature_store",
        "retrieve": "retrieval",
        "score": "ranker",
        "rerank": "reranker",
    }

    def _enter(self, method: str, timeout_s: float) -> None:
        self.calls.append((method, timeout_s))
        service = self.SERVICE[method]
        assert timeout_s > 0
        code = grpc.StatusCode.UNAVAILABLE if service in self.down else self.failing.get(method)
        if code is not None:
            raise DownstreamError(service, code, f"{service} failed: {code.name}")
        took = self.latency.get(method, 0.001)
        if took > timeout_s:
            self.clock.now += timeout_s
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            raise DownstreamError(service, code, f"{service} failed: {code.name}")
        self.clock.now += took + self.stall.get(method, 0.0)

    def called(self) -> list[str]:
        return [m for m, _ in self.calls]

    async def pseudonymize(self, user_refs: Sequence[str], timeout_s: float) -> Pseudonyms:
        self._enter("pseudonymize", timeout_s)
        return Pseudonyms(tuple(f"v1.p-{r}" for r in user_refs), "v1")

    async def user_features(
        self, user_id: str, max_recent_items: int, timeout_s: float
    ) -> UserFeatures:
        self._enter("user_features", timeout_s)
        found = self.users.get(user_id)
        if found is None:
            return UserFeatures(known_user=False)
        return UserFeatures(
            known_user=True,
            recent_item_ids=found.recent_item_ids[:max_recent_items],
            purchased_item_ids=found.purchased_item_ids,
            top_categories=found.top_categories,
            category_affinities=found.category_affinities,
            item_interactions=found.item_interactions[:max_recent_items],
        )

    async def item_features(self, item_ids: Sequence[str], timeout_s: float) -> ItemLookup:
        self._enter("item_features", timeout_s)
        if len(item_ids) > self.max_item_batch:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED
            raise DownstreamError("feature_store", code, "feature_store failed: " + code.name)
        return ItemLookup(
            items=tuple(CATALOG[i] for i in item_ids if i in CATALOG),
            missing_item_ids=tuple(i for i in item_ids if i not in CATALOG),
        )

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> PopularItems:
        self._enter("popular_items", timeout_s)
        skip = set(excluded_item_ids)
        if not self.release:
            plain = [replace(CATALOG[i], dp_popularity=0.0) for i in sorted(CATALOG)]
            return PopularItems(tuple(f for f in plain if f.item_id not in skip)[:limit], "")
        items = [CATALOG[i] for i in POPULARITY_ORDER if i not in skip][:limit]
        return PopularItems(tuple(items), self.release)

    async def ingest_events(self, events: Sequence[StoredEvent], timeout_s: float) -> IngestResult:
        self._enter("ingest_events", timeout_s)
        if self.ingest_error is not None:
            code, message = self.ingest_error
            raise DownstreamError("feature_store", code, message)
        seen = {e.event_id for e in self.stored}
        new = [e for e in events if e.event_id not in seen]
        self.stored += new
        return IngestResult(len(new), len(events) - len(new))

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult:
        self._enter("retrieve", timeout_s)
        skip = set(excluded_item_ids)
        cold = not any(h in self.index for h in history)
        if cold:
            # What the retrieval service answers (its real cold-start code).
            found = retrieve_for_history(SERVED, [], n, skip)
            return RetrievalResult(
                candidates=tuple(RetrievedItem(i, score) for i, score, _ in found.items),
                index_version=INDEX,
                cold_start=True,
            )
        kept = [i for i in self.index if i not in skip][:n]
        return RetrievalResult(
            candidates=tuple(
                RetrievedItem(i, 1.0 - 0.05 * RETRIEVAL_ORDER.index(i), (float(j), 1.0))
                for j, i in enumerate(kept)
            ),
            index_version=INDEX,
            cold_start=cold,
        )

    async def score(
        self, context: ShopperContext, items: Sequence[ItemFeatures], timeout_s: float
    ) -> Scores:
        self._enter("score", timeout_s)
        self.ranker_contexts.append(context)
        wanted = [f for f in items if self.score_only is None or f.item_id in self.score_only]
        return Scores({f.item_id: RANKER_SCORES[f.item_id] for f in wanted}, "minilm", "h1", "cpu")

    async def rerank(self, request: RerankRequest, timeout_s: float) -> RerankResult:
        self._enter("rerank", timeout_s)
        self.rerank_requests.append(request)
        # One item per category first (most relevant first), then the rest by relevance.
        ordered = sorted(request.candidates, key=lambda c: -c.relevance)
        firsts: list[str] = []
        for c in ordered:
            if c.category not in {o.category for o in ordered if o.item_id in firsts}:
                firsts.append(c.item_id)
        ids = firsts + [c.item_id for c in ordered if c.item_id not in firsts]
        count = request.k if self.rerank_returns is None else self.rerank_returns
        picked = [*self.rerank_extra_ids, *ids[:count]]
        method = RerankMethod.DPP if request.method is RerankMethod.UNSPECIFIED else request.method
        return RerankResult(tuple(RerankedItem(i, 10.0 - n) for n, i in enumerate(picked)), method)


class Harness:
    """A pipeline over Dependencies with its spans and metrics read back."""

    def __init__(self, deps: Dependencies, settings: OrchestratorSettings) -> None:
        self.deps = deps
        self.spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[self.reader]).get_meter("test")
        self.popularity = PopularityCache(self._fetch_popular, settings.popularity_refresh_s)
        backends: Backends = deps
        self.pipeline = Pipeline(
            backends,
            self.popularity,
            settings,
            metrics_=PipelineMetrics(meter),
            tracer=provider.get_tracer("test"),
            now=lambda: datetime(2026, 3, 1, 12, tzinfo=UTC),
        )

    async def _fetch_popular(self) -> PopularItems:
        return await self.deps.popular_items(500, [], 2.0)

    async def fill_cache(self) -> None:
        assert await self.popularity.refresh()
        self.deps.calls.clear()

    def budget(self, seconds: float = BUDGET_S) -> Budget:
        return Budget.from_timeout(seconds, self.deps.clock)

    async def recommend(self, **query: object) -> Outcome:
        values: dict[str, object] = {
            "user_ref": SHOPPER,
            "k": K,
            "method": RerankMethod.DPP,
            "tradeoff": 0.5,
        }
        values.update(query)
        return await self.pipeline.recommend(RecommendQuery(**values), self.budget())  # type: ignore[arg-type]

    def fallbacks(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == "recsys.orchestrator.fallbacks":
                        for point in metric.data.data_points:
                            attrs = dict(point.attributes or {})
                            key = (str(attrs["stage"]), str(attrs["reason"]))
                            counts[key] = int(point.value)  # type: ignore[union-attr]
        return counts


def _settings(**overrides: object) -> OrchestratorSettings:
    values: dict[str, object] = {"candidate_count": 8, "recent_items": 5}
    values.update(overrides)
    return OrchestratorSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def deps(clock: FakeClock) -> Dependencies:
    return Dependencies(clock)


@pytest.fixture
async def harness(deps: Dependencies) -> Harness:
    h = Harness(deps, _settings())
    await h.fill_cache()
    return h


def ids(outcome: Outcome) -> list[str]:
    return [c.item_id for c in outcome.items]


def degraded(outcome: Outcome) -> dict[Stage, Reason]:
    return {d.stage: d.reason for d in outcome.degraded}


def stages(outcome: Outcome) -> set[tuple[Stage, ...]]:
    return {tuple(c.stages) for c in outcome.items}


def category_counts(items: Sequence[Candidate]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in items:
        counts[c.category] = counts.get(c.category, 0) + 1
    return counts


# ---- the full pipeline --------------------------------------------------------------------


def texts(contexts: Sequence[ShopperContext]) -> list[tuple[tuple[str, ...], ...]]:
    """What the cross-encoder reads of each context: history titles and top categories."""
    return [(c.recent_item_titles, c.recent_categories) for c in contexts]


async def test_full_pipeline_runs_every_stage(harness: Harness, deps: Dependencies) -> None:
    out = await harness.recommend()
    assert not out.degraded
    assert len(out.items) == K
    assert stages(out) == {(Stage.RETRIEVAL, Stage.RANKER, Stage.RERANKER)}
    assert out.versions == {
        "pseudonym_key": "v1",
        "retrieval_index": INDEX,
        "ranker_model": "minilm/h1",
        "ranker_backend": "cpu",
        "reranker_method": "RERANK_METHOD_DPP",
    }
    assert deps.called() == [
        "pseudonymize",
        "user_features",
        "retrieve",
        "item_features",
        "score",
        "rerank",
    ]
    # The ranker read the history's titles (from the candidates' lookup: one round trip)
    # and the shopper's categories.
    assert texts(deps.ranker_contexts) == [(("item 3", "item 7"), ("garden", "toys"))]
    # And the learned ranking model's signals: the history's prices, one prior score per
    # candidate (retrieval's, in candidate order) and the request time.
    context = deps.ranker_contexts[0]
    assert context.recent_item_prices == (4.0, 8.0)
    assert len(context.prior_scores) == 8
    assert context.prior_scores == tuple(sorted(context.prior_scores, reverse=True))
    assert context.request_time is not None
    # Relevance is the settings' blend (0.5) of the ranker's score and retrieval's.
    request = deps.rerank_requests[0]
    retrieval = [1.0 - 0.05 * RETRIEVAL_ORDER.index(c.item_id) for c in request.candidates]
    expected = blend([RANKER_SCORES[c.item_id] for c in request.candidates], retrieval, 0.5)
    assert [c.relevance for c in request.candidates] == pytest.approx(expected.tolist())
    assert all(c.embedding and c.category for c in request.candidates)
    assert [c.score for c in out.items] == [10.0, 9.0, 8.0, 7.0]
    # Every call got a deadline from the caller's budget.
    assert all(0 < t <= BUDGET_S for _, t in deps.calls)


async def test_ranker_weight_comes_from_the_settings(deps: Dependencies) -> None:
    h = Harness(deps, _settings(ranker_weight=1.0))
    out = await h.recommend(method=RerankMethod.NONE, tradeoff=0.0)
    request = deps.rerank_requests[0]
    assert [c.relevance for c in request.candidates] == [
        RANKER_SCORES[c.item_id] for c in request.candidates
    ]
    assert out.items[0].relevance == max(RANKER_SCORES[c.item_id] for c in request.candidates)


def test_the_pipeline_has_no_defaults_of_its_own() -> None:
    """Its knobs are the settings' (one source): the constructor needs them."""
    import inspect

    params = inspect.signature(Pipeline).parameters
    assert params["settings"].default is inspect.Parameter.empty
    assert not {"candidate_count", "recent_items", "ranker_weight"} & set(params)


# ---- the privacy gateway (mandatory) -------------------------------------------------------


async def test_gateway_down_fails_the_request_and_nothing_proceeds(
    harness: Harness, deps: Dependencies
) -> None:
    deps.down.add("privacy_gateway")
    with pytest.raises(Unavailable, match="without a pseudonym") as err:
        await harness.recommend()
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    assert deps.called() == ["pseudonymize"]


async def test_gateway_late_fails_the_request_unavailable(
    harness: Harness, deps: Dependencies
) -> None:
    deps.latency["pseudonymize"] = 60.0
    with pytest.raises(Unavailable):
        await harness.recommend()
    assert deps.called() == ["pseudonymize"]


async def test_gateway_invalid_argument_passes_through(
    harness: Harness, deps: Dependencies
) -> None:
    deps.failing["pseudonymize"] = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(DownstreamError) as err:
        await harness.recommend()
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.reason is Reason.INVALID_ARGUMENT
    assert deps.called() == ["pseudonymize"]


async def test_gateway_without_a_pseudonym_is_unavailable(
    harness: Harness, deps: Dependencies
) -> None:
    async def empty(user_refs: Sequence[str], timeout_s: float) -> Pseudonyms:
        return Pseudonyms(("",), "v1")

    deps.pseudonymize = empty  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="no pseudonym"):
        await harness.recommend()
    assert deps.called() == []


# ---- the feature store ---------------------------------------------------------------------


async def test_feature_store_down_serves_the_cached_dp_popularity_list(
    harness: Harness, deps: Dependencies
) -> None:
    deps.down.add("feature_store")
    out = await harness.recommend(excluded_item_ids=("I11",))
    assert degraded(out) == {Stage.FEATURE_STORE: Reason.UNAVAILABLE}
    assert ids(out) == POPULARITY_ORDER[1 : K + 1]
    assert stages(out) == {(Stage.POPULARITY,)}
    assert [c.score for c in out.items] == [CATALOG[i].dp_popularity for i in ids(out)]
    assert all(c.features is not None and c.features.title for c in out.items)
    assert out.versions == {"pseudonym_key": "v1", "popularity_release": RELEASE}
    assert deps.called() == ["pseudonymize", "user_features"]
    assert harness.fallbacks() == {("feature_store", "unavailable"): 1}
    events = [
        dict(e.attributes or {})
        for s in harness.spans.get_finished_spans()
        for e in s.events
        if e.name == "degraded"
    ]
    assert events == [
        {
            "recsys.stage": "feature_store",
            "recsys.reason": "unavailable",
            "recsys.fallback": "popularity",
        }
    ]


async def test_item_features_down_skips_the_ranker_and_keeps_retrieval_order(
    harness: Harness, deps: Dependencies
) -> None:
    # The history lookup (2 ids) succeeds; the candidate lookup (8 ids) is refused.
    deps.max_item_batch = 5
    out = await harness.recommend(method=RerankMethod.NONE, tradeoff=0.0)
    assert degraded(out) == {
        Stage.FEATURE_STORE: Reason.RESOURCE_EXHAUSTED,
        Stage.RANKER: Reason.NO_ITEM_FEATURES,
    }
    assert "score" not in deps.called()
    assert stages(out) == {(Stage.RETRIEVAL, Stage.RERANKER)}
    assert all(c.relevance == pytest.approx(c.retrieval_score) for c in out.items)
    assert "ranker_model" not in out.versions
    assert out.versions["reranker_method"] == "RERANK_METHOD_NONE"


async def test_history_items_missing_from_the_catalog_are_not_a_degradation(
    harness: Harness, deps: Dependencies
) -> None:
    # The history's ids ride in the candidates' lookup; the store no longer knows them.
    lookups: list[list[str]] = []

    async def forget_history(item_ids: Sequence[str], timeout_s: float) -> ItemLookup:
        lookups.append(list(item_ids))
        found = await Dependencies.item_features(deps, item_ids, timeout_s)
        history = set(KNOWN.recent_item_ids)
        return ItemLookup(
            items=tuple(f for f in found.items if f.item_id not in history),
            missing_item_ids=(*found.missing_item_ids, *(i for i in item_ids if i in history)),
        )

    deps.item_features = forget_history  # type: ignore[method-assign]
    out = await harness.recommend()
    assert not out.degraded
    assert texts(deps.ranker_contexts) == [((), ("garden", "toys"))]
    assert len(lookups) == 1
    assert set(KNOWN.recent_item_ids) <= set(lookups[0])


# ---- retrieval -----------------------------------------------------------------------------


async def test_retrieval_down_serves_popularity_without_purchases(
    harness: Harness, deps: Dependencies
) -> None:
    deps.down.add("retrieval")
    out = await harness.recommend(excluded_item_ids=("I11",), exclude_purchased=True)
    assert degraded(out) == {Stage.RETRIEVAL: Reason.UNAVAILABLE}
    assert stages(out) == {(Stage.POPULARITY,)}
    assert ids(out) == POPULARITY_ORDER[1 : K + 1]
    assert out.versions == {"pseudonym_key": "v1", "popularity_release": RELEASE}
    assert "score" not in deps.called()
    assert "rerank" not in deps.called()


async def test_retrieval_down_never_shows_a_purchase_from_the_cache(deps: Dependencies) -> None:
    deps.users[f"v1.p-{SHOPPER}"] = UserFeatures(
        known_user=True, recent_item_ids=("I03",), purchased_item_ids=("I11", "I09")
    )
    h = Harness(deps, _settings())
    await h.fill_cache()
    deps.down.add("retrieval")
    out = await h.recommend(exclude_purchased=True)
    assert ids(out) == ["I10", "I08", "I07", "I06"]


async def test_no_candidates_left_serves_popularity_unflagged(
    harness: Harness, deps: Dependencies
) -> None:
    deps.index = RETRIEVAL_ORDER[:10]
    out = await harness.recommend(excluded_item_ids=tuple(RETRIEVAL_ORDER[:10]))
    assert not out.degraded
    assert ids(out) == ["I11", "I10"]
    assert stages(out) == {(Stage.POPULARITY,)}
    assert out.versions["popularity_release"] == RELEASE


# ---- the ranker ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("down", Reason.UNAVAILABLE), ("late", Reason.DEADLINE_EXCEEDED)],
)
async def test_ranker_down_or_late_keeps_retrieval_order_without_blend(
    harness: Harness, deps: Dependencies, clock: FakeClock, fault: str, reason: Reason
) -> None:
    if fault == "down":
        deps.down.add("ranker")
    else:
        deps.latency["score"] = 60.0
    started = clock.now
    out = await harness.recommend(method=RerankMethod.NONE, tradeoff=0.0)
    assert degraded(out) == {Stage.RANKER: reason}
    assert stages(out) == {(Stage.RETRIEVAL, Stage.RERANKER)}
    # Blend skipped: relevance is the retrieval score itself, in retrieval order.
    request = deps.rerank_requests[0]
    assert [c.relevance for c in request.candidates] == [
        1.0 - 0.05 * RETRIEVAL_ORDER.index(c.item_id) for c in request.candidates
    ]
    assert all(c.relevance == c.retrieval_score for c in out.items)
    assert "ranker_model" not in out.versions
    assert "ranker_backend" not in out.versions
    assert out.versions["reranker_method"] == "RERANK_METHOD_NONE"
    # A late ranker costs its share of the budget, and the reranker still gets time.
    assert clock.now - started < BUDGET_S
    assert harness.fallbacks() == {("ranker", reason.value): 1}


async def test_ranker_with_missing_scores_is_ignored(harness: Harness, deps: Dependencies) -> None:
    deps.score_only = {"I00", "I02"}
    out = await harness.recommend()
    assert degraded(out) == {Stage.RANKER: Reason.INCOMPLETE_SCORES}
    assert "ranker_model" not in out.versions
    assert all(c.relevance == c.retrieval_score for c in out.items)


# ---- the reranker --------------------------------------------------------------------------


async def test_reranker_down_gives_relevance_order_under_the_category_cap(
    harness: Harness, deps: Dependencies
) -> None:
    deps.down.add("reranker")
    out = await harness.recommend(k=6, max_per_category=1)
    assert degraded(out) == {Stage.RERANKER: Reason.UNAVAILABLE}
    assert stages(out) == {(Stage.RETRIEVAL, Stage.RANKER)}
    # Three categories, at most one each: the page is short rather than over the cap.
    assert len(out.items) == 3
    assert category_counts(out.items) == {"garden": 1, "kitchen": 1, "toys": 1}
    relevance = [c.relevance for c in out.items]
    assert relevance == sorted(relevance, reverse=True)
    assert [c.score for c in out.items] == relevance
    assert "reranker_method" not in out.versions
    assert out.versions["ranker_model"] == "minilm/h1"


async def test_reranker_down_without_a_cap_is_plain_top_k(
    harness: Harness, deps: Dependencies
) -> None:
    deps.down.add("reranker")
    out = await harness.recommend(k=5)
    relevance = [c.relevance for c in out.items]
    assert len(out.items) == 5
    assert relevance == sorted(relevance, reverse=True)


async def test_short_reranked_page_is_filled_by_relevance_within_the_cap(
    harness: Harness, deps: Dependencies
) -> None:
    deps.rerank_returns = 2
    deps.rerank_extra_ids = ("NOT-RETRIEVED",)
    out = await harness.recommend(k=5, max_per_category=2)
    assert not out.degraded
    assert "NOT-RETRIEVED" not in ids(out)
    assert len(out.items) == 5
    assert [c.stages[-1] for c in out.items[:2]] == [Stage.RERANKER] * 2
    filled = out.items[2:]
    assert all(Stage.RERANKER not in c.stages for c in filled)
    assert [c.score for c in filled] == [c.relevance for c in filled]
    # The reranker's picks count against the cap of the fill.
    assert max(category_counts(out.items).values()) <= 2


# ---- cold start and the popularity cache ---------------------------------------------------


async def test_cold_start_shopper_gets_dp_popularity_candidates_ranked_and_reranked(
    harness: Harness, deps: Dependencies
) -> None:
    out = await harness.recommend(user_ref="never-seen", excluded_item_ids=("I11",))
    assert not out.degraded
    assert stages(out) == {(Stage.POPULARITY, Stage.RANKER, Stage.RERANKER)}
    request = deps.rerank_requests[0]
    # The first candidate_count items of the DP release, not retrieval's raw counts.
    assert [c.item_id for c in request.candidates] == POPULARITY_ORDER[1:9]
    assert out.versions["popularity_release"] == RELEASE
    assert out.versions["retrieval_index"] == INDEX
    assert out.versions["ranker_model"] == "minilm/h1"
    assert texts(deps.ranker_contexts) == [((), ())]


async def test_cold_start_with_an_empty_cache_serves_the_catalog_order_flagged(
    deps: Dependencies,
) -> None:
    h = Harness(deps, _settings())  # nothing cached
    out = await h.recommend(user_ref="never-seen", excluded_item_ids=("I00",))
    assert degraded(out) == {Stage.POPULARITY: Reason.NO_DP_RELEASE}
    assert stages(out) == {(Stage.RETRIEVAL, Stage.RANKER, Stage.RERANKER)}
    # The first candidate_count items by id, scored 0 before the ranker; not the raw counts.
    request = deps.rerank_requests[0]
    assert sorted(c.item_id for c in request.candidates) == RETRIEVAL_ORDER[1:9]
    assert "popularity_release" not in out.versions
    assert h.fallbacks() == {("popularity", "no_dp_release"): 1}


async def test_cold_start_before_any_release_is_not_labelled_popularity(
    deps: Dependencies,
) -> None:
    deps.release = ""
    h = Harness(deps, _settings())
    await h.fill_cache()  # the store's catalog, all popularity 0, no release id
    out = await h.recommend(user_ref="never-seen")
    assert degraded(out) == {Stage.POPULARITY: Reason.NO_DP_RELEASE}
    assert "popularity_release" not in out.versions
    assert all(Stage.POPULARITY not in c.stages for c in out.items)


async def test_empty_cache_and_store_down_serves_the_catalog_order_flagged(
    deps: Dependencies,
) -> None:
    h = Harness(deps, _settings())
    deps.down.add("feature_store")
    out = await h.recommend(excluded_item_ids=("I01",))
    assert degraded(out) == {
        Stage.FEATURE_STORE: Reason.UNAVAILABLE,
        Stage.POPULARITY: Reason.NO_DP_RELEASE,
    }
    # Retrieval's cold-start list is the catalog by item id with scores 0, never the raw
    # training counts (which would order it I05, I06, I04, I07).
    assert ids(out) == ["I00", "I02", "I03", "I04"]
    assert all(c.score == c.relevance == c.retrieval_score == 0.0 for c in out.items)
    assert stages(out) == {(Stage.RETRIEVAL,)}
    assert out.versions == {"pseudonym_key": "v1", "retrieval_index": INDEX}
    # The store is known to be down: no live popularity call was tried.
    assert "popular_items" not in deps.called()


async def test_store_without_a_release_and_retrieval_down_serves_the_catalog_flagged(
    deps: Dependencies,
) -> None:
    deps.release = ""
    h = Harness(deps, _settings())
    deps.down.add("retrieval")
    out = await h.recommend()
    assert degraded(out) == {
        Stage.RETRIEVAL: Reason.UNAVAILABLE,
        Stage.POPULARITY: Reason.NO_DP_RELEASE,
    }
    assert ids(out) == RETRIEVAL_ORDER[:K]
    assert all(c.score == 0.0 for c in out.items)
    assert "popularity_release" not in out.versions


async def test_empty_cache_and_retrieval_down_asks_the_store_live(deps: Dependencies) -> None:
    h = Harness(deps, _settings())
    deps.down.add("retrieval")
    out = await h.recommend(excluded_item_ids=("I11",))
    assert degraded(out) == {Stage.RETRIEVAL: Reason.UNAVAILABLE}
    assert ids(out) == POPULARITY_ORDER[1 : K + 1]
    assert stages(out) == {(Stage.POPULARITY,)}
    assert out.versions["popularity_release"] == RELEASE
    assert deps.called()[-1] == "popular_items"


async def test_empty_cache_with_store_and_retrieval_down_is_unavailable(
    deps: Dependencies,
) -> None:
    h = Harness(deps, _settings())
    deps.down |= {"feature_store", "retrieval"}
    with pytest.raises(Unavailable, match="no stage could produce"):
        await h.recommend()


async def test_empty_cache_retrieval_down_and_live_list_failing_is_unavailable(
    deps: Dependencies,
) -> None:
    h = Harness(deps, _settings())
    deps.failing["retrieve"] = grpc.StatusCode.UNAVAILABLE
    deps.failing["popular_items"] = grpc.StatusCode.INTERNAL
    with pytest.raises(Unavailable, match="no stage could produce"):
        await h.recommend()
    assert deps.called() == [
        "pseudonymize",
        "user_features",
        "retrieve",
        "popular_items",
    ]


def _raw_derivable() -> list[float]:
    """Every value a leak of RAW_COUNTS would show: counts, shares of the top and total
    (the top's own share, 1.0, tells nothing and is a common score, so it is left out)."""
    counts = list(RAW_COUNTS.values())
    top, total = max(counts), sum(counts)
    shares = [c / top for c in counts if c != top]
    return [float(c) for c in counts] + shares + [c / total for c in counts]


@pytest.mark.parametrize("shopper", [SHOPPER, "never-seen"])
@pytest.mark.parametrize("release", [RELEASE, ""])
@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize(
    "down",
    [
        set(),
        {"feature_store"},
        {"retrieval"},
        {"ranker"},
        {"reranker"},
        {"ranker", "reranker"},
        {"item_features"},
        {"no_candidates"},
    ],
)
async def test_no_answer_on_any_path_carries_a_value_derived_from_raw_counts(
    deps: Dependencies, down: set[str], cached: bool, release: str, shopper: str
) -> None:
    """Every degradation path, cold start, an empty DP cache, a store with no release and
    the store down before any cache: neither the order nor a score of an answer comes from
    the retrieval artefact's raw training counts."""
    deps.release = release
    h = Harness(deps, _settings())
    if cached:
        await h.fill_cache()
    if "item_features" in down:
        deps.max_item_batch = 2  # the history lookup passes, the candidate lookup fails
    if "no_candidates" in down:
        deps.index = RETRIEVAL_ORDER[:9]
    deps.down |= down - {"item_features", "no_candidates"}
    # Three items left when nothing is retrievable: their raw order (I10, I11, I09) is
    # neither their id order nor the DP release's.
    excluded = tuple(RETRIEVAL_ORDER[:9]) if "no_candidates" in down else ("I09",)
    out = await h.recommend(user_ref=shopper, k=6, excluded_item_ids=excluded)
    assert out.items
    allowed = [i for i in RAW_ORDER if i not in excluded]
    got = ids(out)
    if len(got) > 1:
        assert got != allowed[: len(got)], "the answer follows the raw training counts"
    raw = _raw_derivable()
    for cand in out.items:
        for value in (cand.score, cand.relevance, cand.retrieval_score):
            assert not any(value == pytest.approx(r, rel=1e-9, abs=1e-12) for r in raw), (
                f"{cand.item_id} carries {value}, a value derived from the raw counts"
            )
    served_popularity = any(Stage.POPULARITY in c.stages for c in out.items)
    if served_popularity:
        # Labelled popularity only with a DP release behind it.
        assert out.versions.get("popularity_release") == release != ""
    if Stage.POPULARITY in {d.stage for d in out.degraded}:
        assert degraded(out)[Stage.POPULARITY] is Reason.NO_DP_RELEASE
        assert "popularity_release" not in out.versions


async def test_a_failed_refresh_keeps_the_cached_list(harness: Harness, deps: Dependencies) -> None:
    deps.down.add("feature_store")
    assert not await harness.popularity.refresh()
    assert harness.popularity.release_id == RELEASE
    assert [f.item_id for f in harness.popularity.items[:2]] == ["I11", "I10"]


# ---- the deadline --------------------------------------------------------------------------


async def test_deadline_exhausted_mid_request_degrades_every_later_stage(
    harness: Harness, deps: Dependencies
) -> None:
    # Retrieval answers, then the event loop stalls past the caller's deadline.
    deps.stall["retrieve"] = BUDGET_S
    out = await harness.recommend(max_per_category=1)
    assert degraded(out) == {
        Stage.FEATURE_STORE: Reason.DEADLINE_EXCEEDED,
        Stage.RANKER: Reason.NO_ITEM_FEATURES,
        Stage.RERANKER: Reason.DEADLINE_EXCEEDED,
    }
    # No call was started that could not finish.
    assert "score" not in deps.called()
    assert "rerank" not in deps.called()
    # Without item features the candidates have no category, and the cap never binds on
    # uncategorised items (shared.selection, as in the reranker): retrieval's top k.
    assert ids(out) == ["I00", "I01", "I02", "I03"]
    assert stages(out) == {(Stage.RETRIEVAL,)}


async def test_deadline_exhausted_after_the_gateway_serves_the_cache(
    harness: Harness, deps: Dependencies
) -> None:
    deps.stall["pseudonymize"] = BUDGET_S
    out = await harness.recommend()
    assert degraded(out) == {Stage.FEATURE_STORE: Reason.DEADLINE_EXCEEDED}
    assert ids(out) == POPULARITY_ORDER[:K]
    assert deps.called() == ["pseudonymize"]


async def test_deadline_already_spent_fails_before_any_call(
    harness: Harness, deps: Dependencies
) -> None:
    query = RecommendQuery(user_ref=SHOPPER, k=K, method=RerankMethod.DPP, tradeoff=0.5)
    with pytest.raises(DeadlineExceeded):
        await harness.pipeline.recommend(query, harness.budget(0.0))
    assert deps.called() == []


# ---- exclusions on every path --------------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "cached"),
    [
        (set(), True),
        ({"feature_store"}, True),
        ({"feature_store"}, False),
        ({"retrieval"}, True),
        ({"retrieval"}, False),
        ({"ranker"}, True),
        ({"reranker"}, True),
        ({"ranker", "reranker"}, True),
    ],
)
@pytest.mark.parametrize("shopper", [SHOPPER, "never-seen"])
async def test_exclusions_are_honoured_on_every_path(
    deps: Dependencies, down: set[str], cached: bool, shopper: str
) -> None:
    h = Harness(deps, _settings())
    if cached:
        await h.fill_cache()
    deps.down |= down
    # Every source's favourites: retrieval's top, the DP release's top, the raw cold start.
    excluded = ("I00", "I11", "I05", "I06")
    out = await h.recommend(user_ref=shopper, k=6, excluded_item_ids=excluded)
    assert out.items
    assert not set(ids(out)) & set(excluded)
    assert len(set(ids(out))) == len(out.items)


# ---- LogEvents -----------------------------------------------------------------------------


def _event(n: int, ref: str = "bob", **kw: object) -> ShopperEvent:
    values: dict[str, object] = {
        "event_id": f"e{n}",
        "user_ref": ref,
        "item_id": f"I{n:02d}",
        "type": EventType.VIEW,
    }
    values.update(kw)
    return ShopperEvent(**values)  # type: ignore[arg-type]


async def test_log_events_stores_pseudonymous_events(harness: Harness, deps: Dependencies) -> None:
    at = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
    events = [
        _event(1),
        _event(2, ref="carol", type=EventType.PURCHASE, quantity=3, timestamp=at),
        _event(3),
    ]
    result = await harness.pipeline.log_events(events, harness.budget())
    assert result == IngestResult(3, 0)
    # One gateway call for the distinct users; no raw reference reaches the store.
    assert deps.called() == ["pseudonymize", "ingest_events"]
    assert deps.stored == [
        StoredEvent(
            "e1", "v1.p-bob", "I01", EventType.VIEW, datetime(2026, 3, 1, 12, tzinfo=UTC), 1
        ),
        StoredEvent("e2", "v1.p-carol", "I02", EventType.PURCHASE, at, 3),
        StoredEvent(
            "e3", "v1.p-bob", "I03", EventType.VIEW, datetime(2026, 3, 1, 12, tzinfo=UTC), 1
        ),
    ]
    again = await harness.pipeline.log_events(events[:1], harness.budget())
    assert again == IngestResult(0, 1)


async def test_log_events_without_the_gateway_stores_nothing(
    harness: Harness, deps: Dependencies
) -> None:
    deps.down.add("privacy_gateway")
    with pytest.raises(Unavailable, match="not stored without pseudonyms"):
        await harness.pipeline.log_events([_event(1)], harness.budget())
    assert deps.called() == ["pseudonymize"]
    assert deps.stored == []


async def test_log_events_gateway_invalid_argument_passes_through(
    harness: Harness, deps: Dependencies
) -> None:
    deps.failing["pseudonymize"] = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(DownstreamError) as err:
        await harness.pipeline.log_events([_event(1)], harness.budget())
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert deps.stored == []


async def test_log_events_incomplete_pseudonyms_store_nothing(
    harness: Harness, deps: Dependencies
) -> None:
    async def short(user_refs: Sequence[str], timeout_s: float) -> Pseudonyms:
        return Pseudonyms(("v1.p-x",), "v1")

    deps.pseudonymize = short  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="incomplete"):
        await harness.pipeline.log_events([_event(1), _event(2, ref="dan")], harness.budget())
    assert deps.stored == []


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (grpc.StatusCode.UNAVAILABLE, "feature_store failed: UNAVAILABLE"),
        (grpc.StatusCode.INVALID_ARGUMENT, "events[0].item_id is too long"),
    ],
)
async def test_log_events_store_failure_is_the_answer(
    harness: Harness, deps: Dependencies, code: grpc.StatusCode, message: str
) -> None:
    deps.ingest_error = (code, message)
    with pytest.raises(DownstreamError) as err:
        await harness.pipeline.log_events([_event(1)], harness.budget())
    # The status reaches the caller unchanged (the store acknowledges only durable writes).
    assert err.value.code == code
    assert err.value.message == message
