"""Readiness that follows the database: a background probe turns the gRPC health status off
while the database is unreachable (or not migrated) and back on when it answers again, so
Kubernetes stops routing to a replica that cannot serve instead of letting RPCs fail."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

log = logging.getLogger(__name__)


class ReadinessMonitor:
    """Runs ``check`` (blocking, in ``executor``) every ``interval_s`` and reports changes.

    ``check`` returns True when the service can serve; an exception or a probe slower than
    ``timeout_s`` counts as not ready.
    """

    def __init__(
        self,
        check: Callable[[], bool],
        set_ready: Callable[[bool], Awaitable[None]],
        executor: Executor,
        *,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        self._check = check
        self._set_ready = set_ready
        self._executor = executor
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.ready: bool | None = None

    async def probe(self) -> bool:
        """One check; reports the status when it changed and returns it."""
        loop = asyncio.get_running_loop()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
            # arrives as the check finishes, and stop() would then wait forever.
            async with asyncio.timeout(self._timeout_s):
                ok = await loop.run_in_executor(self._executor, self._check)
        except Exception as exc:
            log.warning("readiness probe failed", extra={"error": type(exc).__name__})
            ok = False
        if ok != self.ready:
            log.info("readiness changed", extra={"ready": ok})
            await self._set_ready(ok)
            self.ready = ok
        return ok

    async def _loop(self) -> None:
        while not self._stopping:
            await self.probe()
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="feature-store-readiness")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
