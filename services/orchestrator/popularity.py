"""A background-refreshed copy of the feature store's DP popularity list.

The list is the fallback when the feature store or retrieval is down, so it must already be
in memory when that happens: it is fetched at start and refreshed periodically, and a failed
refresh keeps the previous copy.

How old the DP release in use is matters to SREs (a CronJob that stopped releasing leaves
the fallback ever staler): the gauge ``recsys.orchestrator.popularity_release_age``
(seconds) reports it, and every list served from the cache sets the span attribute
``recsys.popularity_release_age_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from opentelemetry import metrics, trace

from services.orchestrator.domain import ItemFeatures, PopularItems
from shared.errors import ServiceError
from shared.filters import NO_FILTER, ItemFilter

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[PopularItems]]


@dataclass
class PopularityCache:
    """The latest popularity list; ``run`` keeps it fresh until ``stop`` is set."""

    fetch: Fetch
    interval_s: float
    retry_s: float = 2.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    # Wall-clock time, for the age of a release stamped by the feature store.
    now: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC), repr=False)
    meter: metrics.Meter | None = field(default=None, repr=False)
    items: list[ItemFeatures] = field(default_factory=list)
    release_id: str = ""
    release_time: dt.datetime | None = None
    fetched_at: float | None = None

    def __post_init__(self) -> None:
        meter = self.meter or metrics.get_meter("services.orchestrator")
        meter.create_observable_gauge(
            "recsys.orchestrator.popularity_release_age",
            callbacks=[self._observe_age],
            unit="s",
            description="Age of the DP popularity release the fallback serves; absent "
            "before the first release.",
        )

    def release_age_s(self) -> float | None:
        """Seconds since the release in use was applied; None without a release."""
        if not self.release_id or self.release_time is None:
            return None
        return max(0.0, (self.now() - self.release_time).total_seconds())

    def _observe_age(self, _options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        age = self.release_age_s()
        return [] if age is None else [metrics.Observation(age)]

    async def refresh(self) -> bool:
        """Fetch the list once; True when it was replaced."""
        try:
            response = await self.fetch()
        except (TimeoutError, ServiceError) as exc:
            log.warning("popularity refresh failed", extra={"error": type(exc).__name__})
            return False
        if not response.items or (self.release_id and not response.release_id):
            # An empty answer (store not seeded yet) must not wipe a list we already hold,
            # nor may a list without a release replace a DP release.
            return False
        self.items = list(response.items)
        self.release_id = response.release_id
        self.release_time = response.release_time
        self.fetched_at = self.clock()
        log.info("popularity list refreshed", extra={"items": len(self.items)})
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            # A list without a release id is the store's catalog before the first DP release:
            # provisional, so it is re-asked for as often as a failed refresh.
            settled = bool(self.items) and bool(self.release_id)
            wait = self.interval_s if settled else min(self.retry_s, self.interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    def top(
        self, k: int, excluded: Sequence[str] = (), item_filter: ItemFilter = NO_FILTER
    ) -> list[ItemFeatures]:
        """The ``k`` most popular items that are not excluded and pass ``item_filter``."""
        age = self.release_age_s()
        if age is not None:
            # On the caller's span (the request serving this list).
            trace.get_current_span().set_attribute("recsys.popularity_release_age_s", age)
        skip = set(excluded)
        # The cache may predate a withdrawal; the pipeline re-checks availability live, and
        # this keeps what the last refresh already knew out even when the store is down.
        return [
            item
            for item in self.items
            if item.item_id not in skip
            and item.available
            and item_filter.accepts(item.item_id, item.category_path, item.price)
        ][:k]
