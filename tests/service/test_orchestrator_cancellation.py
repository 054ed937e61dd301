"""A Recommend whose caller gives up (cancels, or its deadline passes) cancels its downstream
call in flight at once instead of leaving it to run for nobody.

The orchestrator is the real gRPC server from its composition root; its backends are an
in-memory Backends whose retrieval hangs, ignoring its timeout (a dependency that does not
honour deadlines), and records when it is cancelled. The caller
uses shared.channels.create_channel, the channel the orchestrator's own downstream calls use,
so the cancelled-call test also shows that a cancellation passes its tracing interceptor and
reaches the server (shared.cancellation).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from services.orchestrator.app import Orchestrator, build_orchestrator
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    IngestResult,
    ItemFeatures,
    ItemLookup,
    PopularItems,
    Pseudonyms,
    RerankRequest,
    RerankResult,
    RetrievalResult,
    Scores,
    ShopperContext,
    StoredEvent,
    UserFeatures,
)
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import orchestrator_pb2, orchestrator_pb2_grpc


class HangingRetrieval:
    """Answers the gateway and the user lookup; retrieval never answers."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.cancelled: dict[str, float] = {}

    async def _hang(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        self.started[name] = loop.time()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled[name] = loop.time()
            raise

    async def pseudonymize(self, user_refs: Sequence[str], timeout_s: float) -> Pseudonyms:
        return Pseudonyms(tuple(f"p-{r}" for r in user_refs), "v1")

    async def user_features(
        self, user_id: str, max_recent_items: int, timeout_s: float
    ) -> UserFeatures:
        return UserFeatures(known_user=True, recent_item_ids=("i1", "i2"))

    async def item_features(self, item_ids: Sequence[str], timeout_s: float) -> ItemLookup:
        raise AssertionError("retrieval never finishes, so no item is looked up")

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> PopularItems:
        return PopularItems((), "")

    async def ingest_events(self, events: Sequence[StoredEvent], timeout_s: float) -> IngestResult:
        return IngestResult(0, 0)

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult:
        await self._hang("retrieve")
        raise AssertionError("unreachable")

    async def score(
        self, context: ShopperContext, items: Sequence[ItemFeatures], timeout_s: float
    ) -> Scores:
        raise AssertionError("retrieval never finishes, so nothing is scored")

    async def rerank(self, request: RerankRequest, timeout_s: float) -> RerankResult:
        raise AssertionError("retrieval never finishes, so nothing is reranked")


@pytest.fixture
async def hung() -> AsyncIterator[tuple[Orchestrator, HangingRetrieval]]:
    backends = HangingRetrieval()
    settings = OrchestratorSettings(
        port=0,
        privacy_gateway_addr="unused:1",
        feature_store_addr="unused:1",
        retrieval_addr="unused:1",
        ranker_addr="unused:1",
        reranker_addr="unused:1",
        grace_period_s=0.2,
        default_deadline_s=30.0,
        breaker_enabled=False,
    )
    async with build_orchestrator(settings, backends=backends) as app:
        yield app, backends


async def _wait_started(backends: HangingRetrieval) -> None:
    for _ in range(200):
        if backends.started:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("retrieval was not called")


async def test_expired_budget_cancels_the_call_in_flight(
    hung: tuple[Orchestrator, HangingRetrieval],
) -> None:
    app, backends = hung
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Recommend(orchestrator_pb2.RecommendRequest(user_ref="u", k=3), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        for _ in range(100):
            if backends.cancelled:
                break
            await asyncio.sleep(0.005)
    assert set(backends.cancelled) == {"retrieve"}
    # Cancelled when the 0.3 s budget ran out, not whenever the calls would have ended.
    assert all(at - sent < 0.45 for at in backends.cancelled.values())
    assert app.servicer.in_flight == 0


async def test_cancelled_recommend_cancels_the_call_in_flight(
    hung: tuple[Orchestrator, HangingRetrieval],
) -> None:
    app, backends = hung
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        call = stub.Recommend(orchestrator_pb2.RecommendRequest(user_ref="u", k=3), timeout=20)
        await _wait_started(backends)
        assert app.servicer.in_flight == 1
        loop = asyncio.get_running_loop()
        gave_up = loop.time()
        call.cancel()
        for _ in range(100):
            if backends.cancelled and app.servicer.in_flight == 0:
                break
            await asyncio.sleep(0.005)
    assert set(backends.cancelled) == {"retrieve"}
    assert all(at - gave_up < 0.2 for at in backends.cancelled.values())
    assert app.servicer.in_flight == 0
