"""The readiness monitor: failures, hangs and recoveries of the probe become status changes."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from services.feature_store.readiness import ReadinessMonitor
from services.feature_store.store import FeatureStore


async def test_probe_reports_only_changes_and_treats_errors_and_hangs_as_not_ready(
    tmp_path: Path,
) -> None:
    store = FeatureStore.from_url(f"sqlite:///{tmp_path / 'fs.sqlite'}")
    reported: list[bool] = []
    release = threading.Event()
    mode = ["store"]

    def check() -> bool:
        if mode[0] == "raise":
            raise RuntimeError("probe exploded")
        if mode[0] == "hang":
            release.wait(5)
        return store.check_ready(migrate=True)

    async def set_ready(ready: bool) -> None:
        reported.append(ready)

    executor = ThreadPoolExecutor(2)
    monitor = ReadinessMonitor(check, set_ready, executor, interval_s=60, timeout_s=0.3)
    try:
        assert await monitor.probe()  # migrates, then ready
        assert await monitor.probe()
        assert reported == [True]
        mode[0] = "raise"
        assert not await monitor.probe()
        mode[0] = "hang"
        assert not await monitor.probe()  # timed out, not stuck
        assert reported == [True, False]
        release.set()
        mode[0] = "store"
        assert await monitor.probe()
        assert reported == [True, False, True]
    finally:
        release.set()
        executor.shutdown(wait=True)
        store.close()


async def test_background_loop_starts_and_stops(tmp_path: Path) -> None:
    store = FeatureStore.from_url(f"sqlite:///{tmp_path / 'fs.sqlite'}")
    seen = asyncio.Event()
    reported: list[bool] = []

    async def set_ready(ready: bool) -> None:
        reported.append(ready)
        seen.set()

    executor = ThreadPoolExecutor(1)
    # Without migrations the store is not ready: the loop must report that, not crash.
    monitor = ReadinessMonitor(store.check_ready, set_ready, executor, interval_s=0.05, timeout_s=2)
    monitor.start()
    monitor.start()  # idempotent
    await asyncio.wait_for(seen.wait(), 5)
    await monitor.stop()
    await monitor.stop()
    assert reported == [False]
    assert monitor.ready is False
    executor.shutdown()
    store.close()


async def test_stop_returns_even_when_cancelled_as_a_probe_finishes() -> None:
    """A probe that fails at once (database refusing connections) races stop() against the
    executor future finishing; on Python 3.11 asyncio.wait_for lost that cancellation and
    stop() waited forever (seen once in CI as a 300 s test timeout). 300 tries hit the
    window dozens of times with the old code."""

    def refused() -> bool:
        raise ConnectionRefusedError

    async def set_ready(ready: bool) -> None:
        pass

    executor = ThreadPoolExecutor(1)
    try:
        for attempt in range(300):
            monitor = ReadinessMonitor(refused, set_ready, executor, interval_s=0, timeout_s=2)
            monitor.start()
            await asyncio.sleep(0.001 * (attempt % 7))
            stopping = asyncio.ensure_future(monitor.stop())
            done, _ = await asyncio.wait({stopping}, timeout=2)
            if not done:
                raise AssertionError(f"stop() hung on attempt {attempt}")
    finally:
        executor.shutdown(wait=True)
