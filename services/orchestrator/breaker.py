"""A circuit breaker per downstream service, as a Backends wrapper.

A stage that is down costs every request its connect attempts and retries (about 23 ms per
Recommend against a closed port) before its fallback is taken. ``BreakerBackends`` keeps one
``CircuitBreaker`` per downstream service and, while a breaker is open, fails that service's
calls at once with UNAVAILABLE, so the pipeline takes the same fallback it takes for any
failure, without touching the network. The design follows Envoy's outlier detection and
Nygard's *Release It!* breaker:

- closed: calls pass; ``consecutive_failures`` failures in a row, or a failure rate of at least
  ``failure_rate`` over the last ``window`` calls (once ``min_calls`` were seen), open it;
- open: calls fail fast for ``open_s`` seconds;
- half-open: up to ``half_open_probes`` calls go through as probes (the others still fail
  fast); that many successes close the breaker, one failure opens it again.

Only failures that say the service is unwell count: UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN, DATA_LOSS. A caller's mistake (INVALID_ARGUMENT,
NOT_FOUND, ...) is an answer from a healthy service. A call cancelled by its caller counts
neither way. For the privacy gateway an open breaker only makes the refusal faster: the
pipeline answers UNAVAILABLE without a pseudonym whether the gateway failed or was skipped.

The state is exported as a gauge and a transition counter, and set on the span of every call
(``recsys.breaker.state``), so a trace shows a stage that was skipped rather than failed.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc
from opentelemetry import metrics, trace

from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    IngestResult,
    ItemFeatures,
    ItemLookup,
    PopularItems,
    Pseudonyms,
    Reason,
    RerankRequest,
    RerankResult,
    RetrievalResult,
    Scores,
    ShopperContext,
    Stage,
    StoredEvent,
    UserFeatures,
)
from services.orchestrator.downstream import Backends, DownstreamError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Failures that say something about the service's health, not about the request.
UNHEALTHY = frozenset(
    {
        Reason.UNAVAILABLE,
        Reason.DEADLINE_EXCEEDED,
        Reason.RESOURCE_EXHAUSTED,
        Reason.INTERNAL,
        Reason.UNKNOWN,
        Reason.DATA_LOSS,
    }
)


class BreakerState(enum.Enum):
    """The value is the label in spans and metrics; ``level`` is the gauge's reading."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def level(self) -> int:
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


@dataclass(frozen=True)
class BreakerPolicy:
    """When a breaker opens and how it recovers; defaults come from OrchestratorSettings."""

    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    open_s: float = 5.0
    half_open_probes: int = 1

    @classmethod
    def from_settings(cls, settings: OrchestratorSettings) -> BreakerPolicy:
        return cls(
            consecutive_failures=settings.breaker_consecutive_failures,
            failure_rate=settings.breaker_failure_rate,
            window=settings.breaker_window,
            min_calls=settings.breaker_min_calls,
            open_s=settings.breaker_open_s,
            half_open_probes=settings.breaker_half_open_probes,
        )


class BreakerOpen(DownstreamError):
    """A call not made because the service's breaker is open."""

    def __init__(self, service: str) -> None:
        super().__init__(
            service, grpc.StatusCode.UNAVAILABLE, f"{service} failed: UNAVAILABLE (breaker open)"
        )


class CircuitBreaker:
    """The breaker of one service. Not thread-safe: it lives on the event loop."""

    def __init__(
        self,
        service: str,
        policy: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.service = service
        self._policy = policy
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._outcomes: deque[bool] = deque(maxlen=policy.window)
        self._consecutive = 0
        self._opened_at = 0.0
        self._probes = 0
        self._probe_successes = 0

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose ``open_s`` has passed reads half-open."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self._policy.open_s
        ):
            self._move(BreakerState.HALF_OPEN)
        return self._state

    def acquire(self) -> bool:
        """Whether a call may go out now; a True in half-open takes a probe slot that the
        call's ``record`` or ``release`` gives back."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self._policy.half_open_probes:
            self._probes += 1
            return True
        return False

    def release(self) -> None:
        """A call that took a slot ended without a verdict (its caller cancelled it)."""
        if self._state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def record(self, success: bool) -> None:
        """The verdict of a call that ``acquire`` let through."""
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if not success:
                self._open()
                return
            self._probe_successes += 1
            if self._probe_successes >= self._policy.half_open_probes:
                self._close()
            return
        if self._state is BreakerState.OPEN:
            return  # a call started before the breaker opened; its verdict is stale
        self._outcomes.append(success)
        self._consecutive = 0 if success else self._consecutive + 1
        if not success and self._tripped():
            self._open()

    def _tripped(self) -> bool:
        if self._consecutive >= self._policy.consecutive_failures:
            return True
        seen = len(self._outcomes)
        if seen < self._policy.min_calls:
            return False
        failed = seen - sum(self._outcomes)
        return failed / seen >= self._policy.failure_rate

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _close(self) -> None:
        self._outcomes.clear()
        self._consecutive = 0
        self._move(BreakerState.CLOSED)

    def _move(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        self._probes = 0
        self._probe_successes = 0
        log.warning("circuit breaker", extra={"service": self.service, "state": state.value})
        if self._on_change is not None:
            self._on_change(self.service, state)


# The downstream service each call goes to (the names DownstreamError carries).
SERVICES: tuple[str, ...] = tuple(
    s.value
    for s in (
        Stage.PRIVACY_GATEWAY,
        Stage.FEATURE_STORE,
        Stage.RETRIEVAL,
        Stage.RANKER,
        Stage.RERANKER,
    )
)


class BreakerBackends:
    """``Backends`` with a CircuitBreaker in front of each of the five services."""

    def __init__(
        self,
        inner: Backends,
        policy: BreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        meter: metrics.Meter | None = None,
    ) -> None:
        self._inner = inner
        meter = meter or metrics.get_meter("services.orchestrator")
        self._transitions = meter.create_counter(
            "recsys.orchestrator.breaker.transitions",
            description="Circuit breaker state changes by service and new state",
        )
        self._skipped = meter.create_counter(
            "recsys.orchestrator.breaker.skipped",
            description="Downstream calls not made because the service's breaker was open",
        )
        self.breakers = {
            name: CircuitBreaker(name, policy, clock, self._changed) for name in SERVICES
        }
        meter.create_observable_gauge(
            "recsys.orchestrator.breaker.state",
            callbacks=[self._observe],
            description="Circuit breaker state by service: 0 closed, 1 half-open, 2 open",
        )

    def _changed(self, service: str, state: BreakerState) -> None:
        self._transitions.add(1, {"service": service, "state": state.value})

    def _observe(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [
            metrics.Observation(b.state.level, {"service": name})
            for name, b in self.breakers.items()
        ]

    def states(self) -> dict[str, BreakerState]:
        return {name: b.state for name, b in self.breakers.items()}

    async def _guarded(self, service: str, call: Callable[[], Awaitable[T]]) -> T:
        breaker = self.breakers[service]
        span = trace.get_current_span()
        if not breaker.acquire():
            span.set_attribute("recsys.breaker.state", BreakerState.OPEN.value)
            span.add_event("breaker_open", {"recsys.service": service})
            self._skipped.add(1, {"service": service})
            raise BreakerOpen(service)
        span.set_attribute("recsys.breaker.state", breaker.state.value)
        try:
            result = await call()
        except DownstreamError as exc:
            breaker.record(exc.reason not in UNHEALTHY)
            raise
        except asyncio.CancelledError:
            breaker.release()
            raise
        except BaseException:
            breaker.record(False)
            raise
        breaker.record(True)
        return result

    async def pseudonymize(self, user_refs: Sequence[str], timeout_s: float) -> Pseudonyms:
        return await self._guarded(
            "privacy_gateway", lambda: self._inner.pseudonymize(user_refs, timeout_s)
        )

    async def user_features(
        self, user_id: str, max_recent_items: int, timeout_s: float
    ) -> UserFeatures:
        return await self._guarded(
            "feature_store",
            lambda: self._inner.user_features(user_id, max_recent_items, timeout_s),
        )

    async def item_features(self, item_ids: Sequence[str], timeout_s: float) -> ItemLookup:
        return await self._guarded(
            "feature_store", lambda: self._inner.item_features(item_ids, timeout_s)
        )

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> PopularItems:
        return await self._guarded(
            "feature_store",
            lambda: self._inner.popular_items(limit, excluded_item_ids, timeout_s),
        )

    async def ingest_events(self, events: Sequence[StoredEvent], timeout_s: float) -> IngestResult:
        return await self._guarded(
            "feature_store", lambda: self._inner.ingest_events(events, timeout_s)
        )

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult:
        return await self._guarded(
            "retrieval", lambda: self._inner.retrieve(history, n, excluded_item_ids, timeout_s)
        )

    async def similar_items(
        self, item_id: str, n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult:
        return await self._guarded(
            "retrieval",
            lambda: self._inner.similar_items(item_id, n, excluded_item_ids, timeout_s),
        )

    async def score(
        self, context: ShopperContext, items: Sequence[ItemFeatures], timeout_s: float
    ) -> Scores:
        return await self._guarded("ranker", lambda: self._inner.score(context, items, timeout_s))

    async def rerank(self, request: RerankRequest, timeout_s: float) -> RerankResult:
        return await self._guarded("reranker", lambda: self._inner.rerank(request, timeout_s))
