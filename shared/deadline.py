"""Time budgets: every outbound call gets a deadline derived from what the caller has left."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from shared.errors import DeadlineExceeded


@dataclass
class Budget:
    """An absolute deadline on a monotonic clock, split across pipeline stages."""

    deadline: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @classmethod
    def from_timeout(cls, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> Budget:
        return cls(clock() + timeout_s, clock)

    @classmethod
    def from_context(
        cls,
        context: grpc.aio.ServicerContext,
        default_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> Budget:
        """The caller's deadline when it sent one, else ``default_s``; never more than that."""
        remaining = context.time_remaining()
        timeout = default_s if remaining is None else min(remaining, default_s)
        return cls.from_timeout(timeout, clock)

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def timeout_for(self, share: float = 1.0, cap: float | None = None) -> float:
        """Seconds to give one call: ``share`` of what is left, at most ``cap``.

        Raises DeadlineExceeded when nothing is left, so no call is made that cannot finish.
        """
        left = self.remaining()
        if left <= 0.001:
            raise DeadlineExceeded("deadline exceeded before the call could be made")
        timeout = left * share
        return min(timeout, cap) if cap is not None else timeout
