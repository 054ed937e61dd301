"""The circuit breaker per downstream service: its state machine on a fake clock, and the
pipeline over BreakerBackends with the in-memory services of test_orchestrator_degradation.
The process-level twin (a real ranker killed and restarted) is
tests/service/test_orchestrator_breaker.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from services.orchestrator.breaker import (
    BreakerBackends,
    BreakerOpen,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
)
from services.orchestrator.domain import Reason, ShopperContext, Stage
from services.orchestrator.downstream import DownstreamError
from services.orchestrator.pipeline import Pipeline, PipelineMetrics
from shared.errors import Unavailable
from tests.unit.test_orchestrator_degradation import (
    Dependencies,
    FakeClock,
    Harness,
    _settings,
)

POLICY = BreakerPolicy(consecutive_failures=3, failure_rate=0.5, window=10, min_calls=6, open_s=5.0)


class BreakerHarness(Harness):
    """The degradation harness with the pipeline calling through BreakerBackends."""

    def __init__(self, deps: Dependencies, policy: BreakerPolicy = POLICY) -> None:
        super().__init__(deps, _settings())
        self.breaker_reader = InMemoryMetricReader()
        meter = MeterProvider(metric_readers=[self.breaker_reader]).get_meter("breaker")
        self.breakers = BreakerBackends(deps, policy, clock=deps.clock, meter=meter)
        self.pipeline = Pipeline(
            self.breakers,
            self.popularity,
            _settings(),
            metrics_=PipelineMetrics(),
            tracer=self.pipeline._tracer,
            now=lambda: datetime(2026, 3, 1, 12, tzinfo=UTC),
        )

    def gauge(self) -> dict[str, int]:
        levels: dict[str, int] = {}
        data = self.breaker_reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == "recsys.orchestrator.breaker.state":
                        for point in metric.data.data_points:
                            attrs = dict(point.attributes or {})
                            levels[str(attrs["service"])] = int(point.value)  # type: ignore[union-attr]
        return levels


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _breaker(clock: FakeClock, policy: BreakerPolicy = POLICY) -> CircuitBreaker:
    return CircuitBreaker("ranker", policy, clock)


# ---- the state machine --------------------------------------------------------------------


def test_consecutive_failures_open_and_a_success_resets_the_count(clock: FakeClock) -> None:
    b = _breaker(clock)
    for verdict in (False, False, True, False, False):
        assert b.acquire()
        b.record(verdict)
    assert b.state is BreakerState.CLOSED
    assert b.acquire()
    b.record(False)
    assert b.state is BreakerState.OPEN
    assert not b.acquire()


def test_failure_rate_over_the_window_opens_without_a_run_of_failures(clock: FakeClock) -> None:
    b = _breaker(clock)
    # Alternating: never three in a row, but half of the last six failed.
    for verdict in (True, False, True, False, True):
        b.acquire()
        b.record(verdict)
    assert b.state is BreakerState.CLOSED  # five calls: below min_calls
    b.acquire()
    b.record(False)
    assert b.state is BreakerState.OPEN


def test_open_lets_one_probe_through_after_open_s_and_its_success_closes(
    clock: FakeClock,
) -> None:
    b = _breaker(clock)
    for _ in range(3):
        b.acquire()
        b.record(False)
    clock.now += 4.9
    assert not b.acquire()
    clock.now += 0.1
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire()
    assert not b.acquire()  # one probe at a time
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert b.acquire()


def test_a_failed_probe_opens_again_for_a_full_period(clock: FakeClock) -> None:
    b = _breaker(clock)
    for _ in range(3):
        b.acquire()
        b.record(False)
    clock.now += 5.0
    assert b.acquire()
    b.record(False)
    assert b.state is BreakerState.OPEN
    clock.now += 4.0
    assert not b.acquire()
    clock.now += 1.0
    assert b.acquire()


def test_a_cancelled_probe_gives_its_slot_back(clock: FakeClock) -> None:
    b = _breaker(clock)
    for _ in range(3):
        b.acquire()
        b.record(False)
    clock.now += 5.0
    assert b.acquire()
    b.release()
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire()


def test_transitions_are_reported(clock: FakeClock) -> None:
    seen: list[tuple[str, BreakerState]] = []
    b = CircuitBreaker("ranker", POLICY, clock, lambda s, state: seen.append((s, state)))
    for _ in range(3):
        b.acquire()
        b.record(False)
    clock.now += 5.0
    b.acquire()
    b.record(True)
    assert [s for _, s in seen] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


# ---- the wrapper --------------------------------------------------------------------------


async def test_invalid_argument_is_an_answer_not_a_failure(clock: FakeClock) -> None:
    deps = Dependencies(clock)
    deps.failing["score"] = grpc.StatusCode.INVALID_ARGUMENT
    wrapped = BreakerBackends(deps, POLICY, clock=clock)
    for _ in range(10):
        with pytest.raises(DownstreamError) as caught:
            await wrapped.score(ShopperContext(), [], 1.0)
        assert not isinstance(caught.value, BreakerOpen)
    assert wrapped.states()["ranker"] is BreakerState.CLOSED


async def test_a_cancelled_call_counts_neither_way(clock: FakeClock) -> None:
    deps = Dependencies(clock)
    wrapped = BreakerBackends(deps, POLICY, clock=clock)
    for _ in range(3):
        deps.down.add("ranker")
        with pytest.raises(DownstreamError):
            await wrapped.score(ShopperContext(), [], 1.0)
    assert wrapped.states()["ranker"] is BreakerState.OPEN
    clock.now += 5.0
    gate = asyncio.Event()

    async def hang(*_: object) -> object:
        await gate.wait()
        raise AssertionError("never answered")

    deps.score = hang  # type: ignore[method-assign]
    probe = asyncio.ensure_future(wrapped.score(ShopperContext(), [], 1.0))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    # The slot is free again, so the next call is the probe.
    assert wrapped.breakers["ranker"].acquire()


# ---- the pipeline over the breakers ------------------------------------------------------


async def test_a_down_ranker_is_skipped_while_open_and_rejoins_after_a_probe(
    clock: FakeClock,
) -> None:
    deps = Dependencies(clock)
    deps.down.add("ranker")
    h = BreakerHarness(deps)
    await h.fill_cache()
    for _ in range(3):
        out = await h.recommend()
        assert out.degraded[0].stage is Stage.RANKER
    assert h.breakers.states()["ranker"] is BreakerState.OPEN
    assert h.gauge()["ranker"] == BreakerState.OPEN.level
    deps.calls.clear()
    h.spans.clear()
    out = await h.recommend()
    # The ranker was not called at all; the answer is the same retrieval-order fallback.
    assert "score" not in deps.called()
    assert {d.stage: d.reason for d in out.degraded} == {Stage.RANKER: Reason.UNAVAILABLE}
    ranker_span = next(s for s in h.spans.get_finished_spans() if s.name == "orchestrator.ranker")
    assert ranker_span.attributes is not None
    assert ranker_span.attributes["recsys.breaker.state"] == "open"
    assert [e.name for e in ranker_span.events][:1] == ["breaker_open"]
    # The ranker comes back; after open_s one probe goes through and closes the breaker.
    deps.down.clear()
    clock.now += POLICY.open_s
    out = await h.recommend()
    assert not out.degraded
    assert "ranker_model" in out.versions
    assert h.breakers.states()["ranker"] is BreakerState.CLOSED
    assert h.gauge()["ranker"] == BreakerState.CLOSED.level


async def test_open_gateway_breaker_only_makes_the_refusal_faster(clock: FakeClock) -> None:
    deps = Dependencies(clock)
    deps.down.add("privacy_gateway")
    h = BreakerHarness(deps)
    for _ in range(3):
        with pytest.raises(Unavailable):
            await h.recommend()
    deps.calls.clear()
    with pytest.raises(Unavailable):
        await h.recommend()
    assert deps.called() == []  # nothing proceeds, and nothing was even tried
