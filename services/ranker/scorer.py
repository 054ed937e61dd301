"""Scoring a shopper context against candidates: text building, tokenisation, batching.

The backend that runs the model (the local torch model or Triton) is injected, so the same
code path serves both and tests can compare them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from services.ranker.model import encode_pairs, score_arrays
from shared.deadline import Budget
from shared.ranker_text import context_text, item_text

log = logging.getLogger(__name__)

# Raw text beyond this many characters cannot survive token truncation anyway; cutting it
# first keeps the tokenizer's work bounded for hostile inputs.
MAX_TEXT_CHARS = 2048


@dataclass(frozen=True)
class Candidate:
    """The text-bearing fields of one candidate item."""

    item_id: str
    title: str
    category_path: tuple[str, ...]
    price: float


class ScoringBackend(Protocol):
    """Runs the model on tokenised pairs."""

    name: str

    async def score(self, arrays: dict[str, np.ndarray], budget: Budget) -> np.ndarray:
        """Logits, shape (batch,), float32."""
        ...

    async def is_ready(self) -> bool: ...

    async def close(self) -> None: ...


class LocalBackend:
    """The eager torch model in-process, run in the bounded executor."""

    name = "local"

    def __init__(self, model: Any, executor: Executor) -> None:
        self._model = model
        self._executor = executor

    async def score(self, arrays: dict[str, np.ndarray], budget: Budget) -> np.ndarray:
        budget.timeout_for()  # raises DeadlineExceeded when nothing is left
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, score_arrays, self._model, arrays)

    async def is_ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class Ranker:
    """Builds pair texts, tokenises, splits into batches and scores them on a backend."""

    def __init__(
        self,
        tokenizer: Any,
        backend: ScoringBackend,
        executor: Executor,
        *,
        max_batch: int,
        max_text_tokens: int,
        model_name: str,
        model_version: str,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._tokenizer = tokenizer
        self.backend = backend
        self._executor = executor
        self.max_batch = max_batch
        self.max_text_tokens = max_text_tokens
        self.model_name = model_name
        self.model_version = model_version

    def batches(self, n: int) -> list[tuple[int, int]]:
        """[start, end) ranges of at most ``max_batch`` candidates covering ``n``."""
        return [(s, min(s + self.max_batch, n)) for s in range(0, n, self.max_batch)]

    async def score(
        self,
        recent_titles: Sequence[str],
        categories: Sequence[str],
        candidates: Sequence[Candidate],
        budget: Budget,
    ) -> list[float]:
        """One logit per candidate, in candidate order."""
        if not candidates:
            raise ValueError("no candidates to score")
        context = context_text(
            [t[:MAX_TEXT_CHARS] for t in recent_titles], [c[:MAX_TEXT_CHARS] for c in categories]
        )
        texts = [
            item_text(
                c.title[:MAX_TEXT_CHARS], [p[:MAX_TEXT_CHARS] for p in c.category_path], c.price
            )
            for c in candidates
        ]
        loop = asyncio.get_running_loop()

        async def one(start: int, end: int) -> np.ndarray:
            arrays = await loop.run_in_executor(
                self._executor,
                encode_pairs,
                self._tokenizer,
                [context] * (end - start),
                texts[start:end],
                self.max_text_tokens,
            )
            return await self.backend.score(arrays, budget)

        # Batches go out together: Triton's dynamic batcher and its instances work on them
        # in parallel; the local backend queues them on the bounded executor. A task group
        # rather than gather: when the RPC is cancelled or one batch fails, the other
        # batches' Triton calls are cancelled too, not left to compute unused scores.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(s, e)) for s, e in self.batches(len(texts))]
        except ExceptionGroup as failed:
            # The first failure speaks for the request (as it did with gather); the others
            # are the cancellations it caused or the same outage seen by another batch.
            raise failed.exceptions[0] from None
        scores = np.concatenate([t.result() for t in tasks])
        if scores.shape != (len(candidates),):
            raise RuntimeError(f"backend returned {scores.shape} scores for {len(candidates)}")
        return [float(x) for x in scores]


class ReadinessWatcher:
    """Polls a backend and reports readiness changes, so health follows the model server:
    SERVING only while the model is ready on Triton, NOT_SERVING again if Triton goes away."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[bool]],
        on_change: Callable[[bool], Awaitable[None]],
        interval_s: float,
    ) -> None:
        self._probe = probe
        self._on_change = on_change
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.ready: bool | None = None

    async def check(self) -> bool:
        try:
            ready = await self._probe()
        except Exception:
            ready = False
        if ready != self.ready:
            log.info("model readiness changed", extra={"ready": ready})
            self.ready = ready
            await self._on_change(ready)
        return ready

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
