"""Served lists for the online metrics, recorded off the request path.

Every answered Recommend call becomes one ServedList (its recommendation id, the method that
ordered it, how many items it showed, the shopper's variants; no user id and no items), put
on a bounded queue that a background task sends to the feature store in batches. Recommend
never waits for it and never fails because of it: when the store is down or slow the batch is
logged and counted as failed, and when the queue is full new lists are dropped and counted.
Lost lists show up in the online metrics as attributed events without a served list
(``unmatched_event_count``), never as wrong rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from opentelemetry import metrics

from services.orchestrator.domain import Outcome, ServedList, Stage

log = logging.getLogger(__name__)

ServedListSink = Callable[[Sequence[ServedList], float], Awaitable[object]]


def served_method(outcome: Outcome) -> str:
    """How the list was ordered: the reranker's method when it ran, else the path that
    answered (popularity, catalog_order, relevance_order)."""
    method = outcome.versions.get("reranker_method", "")
    if method and any(Stage.RERANKER in c.stages for c in outcome.items):
        return method.removeprefix("RERANK_METHOD_").lower()
    if Stage.POPULARITY in outcome.degraded_stages:
        return "catalog_order"
    if outcome.items and all(c.stages == [Stage.POPULARITY] for c in outcome.items):
        return "popularity"
    return "relevance_order"


def served_list(outcome: Outcome, now: datetime) -> ServedList:
    return ServedList(
        recommendation_id=outcome.recommendation_id,
        served_at=now,
        method=served_method(outcome),
        item_count=len(outcome.items),
        assignments=tuple(outcome.assignments),
    )


class ServedListRecorder:
    """Queues served lists and sends them in batches from ``run``; ``sink`` None disables."""

    def __init__(
        self,
        sink: ServedListSink | None,
        *,
        batch: int = 100,
        queue: int = 10_000,
        timeout_s: float = 2.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        meter: metrics.Meter | None = None,
    ) -> None:
        self._sink = sink
        self._batch = batch
        self._timeout_s = timeout_s
        self._now = now
        self._queue: asyncio.Queue[ServedList] = asyncio.Queue(queue)
        self._in_flight = 0  # lists of the batch being sent
        meter = meter or metrics.get_meter("services.orchestrator")
        self._counter = meter.create_counter(
            "recsys.orchestrator.served_lists",
            unit="{list}",
            description="Served lists for the online metrics, by outcome (sent, failed, dropped)",
        )

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def record(self, outcome: Outcome) -> None:
        """Queue the list; never raises, never waits."""
        if self._sink is None:
            return
        try:
            self._queue.put_nowait(served_list(outcome, self._now()))
        except asyncio.QueueFull:
            self._counter.add(1, {"outcome": "dropped"})

    async def flush(self, first: ServedList | None = None) -> None:
        """Send ``first`` and everything queued now, in batches (the background task's
        step; tests call it too)."""
        pending = [first] if first is not None else []
        while pending or not self._queue.empty():
            while len(pending) < self._batch and not self._queue.empty():
                pending.append(self._queue.get_nowait())
            self._in_flight = len(pending)
            await self._send(pending)
            self._in_flight = 0
            pending = []

    async def _send(self, batch: list[ServedList]) -> None:
        assert self._sink is not None
        try:
            await self._sink(batch, self._timeout_s)
        except Exception as exc:  # a down store must not stop the recorder
            self._counter.add(len(batch), {"outcome": "failed"})
            log.warning(
                "served lists not recorded",
                extra={"lists": len(batch), "error": type(exc).__name__},
            )
        else:
            self._counter.add(len(batch), {"outcome": "sent"})

    async def run(self, stop: asyncio.Event) -> None:
        """Send batches as lists arrive until ``stop``, then what is still queued."""
        if self._sink is None:
            return
        while not stop.is_set():
            getter = asyncio.ensure_future(self._queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter in done:
                await self.flush(getter.result())
            else:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
        # At shutdown, one timeout's worth of sending at most: a down store must not hold
        # up the drain; what is left is counted as dropped.
        try:
            async with asyncio.timeout(self._timeout_s):
                await self.flush()
        except TimeoutError:
            lost = self._queue.qsize() + self._in_flight
            self._counter.add(lost, {"outcome": "dropped"})
