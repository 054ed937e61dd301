"""Orchestrator behaviour that needs no healthy downstream: input validation, a down or hung
privacy gateway (mandatory, so UNAVAILABLE / DEADLINE_EXCEEDED), and load shedding.

Downstream failures here are real network conditions: a port nothing listens on, and a TCP
server that accepts connections but never speaks HTTP/2 (a hung dependency).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest

from services.orchestrator.app import Orchestrator, build_orchestrator
from services.orchestrator.clients import Downstreams
from services.orchestrator.config import OrchestratorSettings
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc


def closed_port_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
async def blackhole() -> AsyncIterator[str]:
    """Accepts TCP connections and never answers: calls to it can only time out."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    for w in held:
        w.close()
    server.close()


def _settings(gateway: str, **overrides: object) -> OrchestratorSettings:
    dead = closed_port_addr()
    return OrchestratorSettings(
        port=0,
        privacy_gateway_addr=gateway,
        feature_store_addr=dead,
        retrieval_addr=dead,
        ranker_addr=dead,
        reranker_addr=dead,
        grace_period_s=0.2,
        downstream_max_attempts=1,
        **overrides,  # type: ignore[arg-type]
    )


async def _orchestrator(gateway: str, **overrides: object) -> Orchestrator:
    app = build_orchestrator(_settings(gateway, **overrides))
    await app.start()
    return app


async def _call(
    app: Orchestrator, request: orchestrator_pb2.RecommendRequest, timeout_s: float = 3.0
) -> orchestrator_pb2.RecommendResponse:
    async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.Recommend(request, timeout=timeout_s)


def _req(**kw: object) -> orchestrator_pb2.RecommendRequest:
    base: dict[str, object] = {"user_ref": "shopper-1", "k": 5}
    base.update(kw)
    return orchestrator_pb2.RecommendRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_req(user_ref=""), "user_ref must not be empty"),
        (_req(user_ref="   "), "user_ref must not be empty"),
        (_req(user_ref="x" * 300), "user_ref must be at most"),
        (_req(k=0), "k must be in [1, 20]"),
        (_req(k=21), "k must be in [1, 20]"),
        (_req(k=-3), "k must be in [1, 20]"),
        (
            _req(diversity=orchestrator_pb2.DiversitySettings(tradeoff=1.5)),
            "diversity.tradeoff must be in [0, 1]",
        ),
        (
            _req(diversity=orchestrator_pb2.DiversitySettings(tradeoff=-0.1)),
            "diversity.tradeoff must be in [0, 1]",
        ),
        (
            _req(diversity=orchestrator_pb2.DiversitySettings(tradeoff=float("nan"))),
            "diversity.tradeoff must be in [0, 1]",
        ),
        (
            _req(diversity=orchestrator_pb2.DiversitySettings(max_per_category=-1)),
            "max_per_category must not be negative",
        ),
        (
            _req(diversity=orchestrator_pb2.DiversitySettings(method=42)),  # type: ignore[arg-type]
            "not a known RerankMethod",
        ),
        (_req(excluded_item_ids=[f"i{n}" for n in range(4)]), "at most 3 ids"),
        (_req(context={f"f{n}": "v" for n in range(5)}), "at most 4 fields"),
    ],
)
async def test_recommend_rejects_bad_input(
    request_: orchestrator_pb2.RecommendRequest, message: str
) -> None:
    app = await _orchestrator(closed_port_addr(), max_k=20, max_exclusions=3, max_context_fields=4)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(app, request_)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.value.details() or "")
    finally:
        await app.stop()


def _event(**kw: object) -> orchestrator_pb2.ShopperEvent:
    base: dict[str, object] = {
        "event_id": "e1",
        "user_ref": "shopper-1",
        "item_id": "I1",
        "type": common_pb2.EVENT_TYPE_VIEW,
    }
    base.update(kw)
    return orchestrator_pb2.ShopperEvent(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "events must not be empty"),
        ([_event()] * 4, "at most 3 events"),
        ([_event(), _event(event_id="")], "events[1].event_id"),
        ([_event(user_ref="")], "events[0].user_ref"),
        ([_event(item_id="")], "events[0].item_id must not be empty"),
        ([_event(type=common_pb2.EVENT_TYPE_UNSPECIFIED)], "events[0].type must be set"),
        ([_event(type=17)], "events[0].type is not a known EventType"),
        ([_event(quantity=-2)], "events[0].quantity must not be negative"),
    ],
)
async def test_log_events_rejects_bad_input(
    events: list[orchestrator_pb2.ShopperEvent], message: str
) -> None:
    app = await _orchestrator(closed_port_addr(), max_events_per_call=3)
    try:
        async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.LogEvents(orchestrator_pb2.LogEventsRequest(events=events), timeout=3)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.value.details() or "")
    finally:
        await app.stop()


async def test_down_gateway_means_unavailable_for_both_rpcs() -> None:
    app = await _orchestrator(closed_port_addr())
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(app, _req())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "pseudonym" in (err.value.details() or "")
        async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as ev_err:
                await stub.LogEvents(
                    orchestrator_pb2.LogEventsRequest(events=[_event()]), timeout=3
                )
        assert ev_err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await app.stop()


async def test_hung_gateway_times_out_within_the_callers_deadline(blackhole: str) -> None:
    app = await _orchestrator(blackhole)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _call(app, _req(), timeout_s=1.0)
        # The gateway gets a share of the caller's 1 s, so the orchestrator answers first
        # (UNAVAILABLE: no pseudonym) instead of leaving the caller to hit its own deadline.
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert loop.time() - started < 0.9
    finally:
        await app.stop()


async def test_requests_beyond_max_in_flight_are_shed_at_once(blackhole: str) -> None:
    app = await _orchestrator(blackhole, max_in_flight=2, default_deadline_s=5.0)
    try:
        async with create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            # Two requests hang on the gateway and hold both slots.
            slow = [asyncio.ensure_future(stub.Recommend(_req(), timeout=5)) for _ in range(2)]
            for _ in range(100):
                if app.servicer.in_flight == 2:
                    break
                await asyncio.sleep(0.02)
            assert app.servicer.in_flight == 2
            started = asyncio.get_running_loop().time()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Recommend(_req(), timeout=5)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert asyncio.get_running_loop().time() - started < 0.5
            for call in slow:
                with pytest.raises(grpc.aio.AioRpcError):
                    await call
            assert app.servicer.in_flight == 0
    finally:
        await app.stop()


class _CountedDownstreams(Downstreams):
    """Real gRPC downstreams that count how often they were closed."""

    def __init__(self, settings: OrchestratorSettings) -> None:
        super().__init__(settings)
        self.closes = 0

    async def close(self) -> None:
        self.closes += 1
        await super().close()


async def test_stop_closes_the_backends_it_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[_CountedDownstreams] = []

    def downstreams(settings: OrchestratorSettings) -> _CountedDownstreams:
        opened.append(_CountedDownstreams(settings))
        return opened[-1]

    monkeypatch.setattr("services.orchestrator.app.Downstreams", downstreams)
    async with build_orchestrator(_settings(closed_port_addr())) as app:
        assert app.backends is opened[0]
    assert [d.closes for d in opened] == [1]
    assert app.refresher is None


async def test_stop_leaves_injected_backends_to_their_owner() -> None:
    settings = _settings(closed_port_addr())
    injected = _CountedDownstreams(settings)
    try:
        async with build_orchestrator(settings, backends=injected) as app:
            assert app.backends is injected
        assert injected.closes == 0
    finally:
        await injected.close()
