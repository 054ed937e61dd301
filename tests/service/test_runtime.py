"""The shared server bootstrap and channel factory, on a real grpc.aio server."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shared.channels import create_channel
from shared.deadline import Budget
from shared.errors import InvalidArgument
from shared.gen.acme.recsys.v1 import reranker_pb2, reranker_pb2_grpc
from shared.server import GrpcServer, run_until_signal
from shared.settings import ServiceSettings

SERVICE = "acme.recsys.v1.RerankerService"


class _Probe(reranker_pb2_grpc.RerankerServiceServicer):
    """Exercises the error paths of the runtime; not a reranker."""

    async def Rerank(self, request, context):  # type: ignore[no-untyped-def]
        if request.k < 0:
            raise InvalidArgument("k must be at least 1")
        if request.k == 99:
            raise RuntimeError("secret internal detail")
        return reranker_pb2.RerankResponse(method=request.method)


async def _start() -> GrpcServer:
    server = GrpcServer(ServiceSettings(port=0, grace_period_s=0.5), [SERVICE])
    reranker_pb2_grpc.add_RerankerServiceServicer_to_server(_Probe(), server.server)
    await server.start()
    return server


async def test_health_reflection_and_error_mapping() -> None:
    server = await _start()
    async with create_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        live = await health.Check(health_pb2.HealthCheckRequest(service="liveness"))
        ready = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert live.status == health_pb2.HealthCheckResponse.SERVING
        assert ready.status == health_pb2.HealthCheckResponse.NOT_SERVING
        await server.set_ready(True)
        ready = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
        assert ready.status == health_pb2.HealthCheckResponse.SERVING

        stub = reranker_pb2_grpc.RerankerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.Rerank(reranker_pb2.RerankRequest(k=-1), timeout=2)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "k must be at least 1" in (bad.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as boom:
            await stub.Rerank(reranker_pb2.RerankRequest(k=99), timeout=2)
        assert boom.value.code() == grpc.StatusCode.INTERNAL
        assert "secret" not in (boom.value.details() or "")

        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = refl.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        async for resp in responses:
            names = {s.name for s in resp.list_services_response.service}
            assert SERVICE in names
            break
    await server.stop(0)


async def test_graceful_shutdown_turns_readiness_off() -> None:
    server = await _start()
    await server.set_ready(True)
    stop = asyncio.Event()
    closed: list[str] = []

    async def hook() -> None:
        closed.append("clients")

    runner = asyncio.create_task(run_until_signal(server, on_shutdown=[hook], stop_event=stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(runner, 5)
    assert closed == ["clients"]
    async with create_channel(f"127.0.0.1:{server.port}", max_attempts=1) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_budget_splits_and_expires() -> None:
    now = [100.0]
    budget = Budget.from_timeout(1.0, clock=lambda: now[0])
    assert budget.timeout_for(0.5) == pytest.approx(0.5)
    assert budget.timeout_for(1.0, cap=0.2) == pytest.approx(0.2)
    now[0] = 101.5
    assert budget.expired
    with pytest.raises(Exception, match="deadline"):
        budget.timeout_for()


async def test_undecodable_request_is_invalid_argument() -> None:
    server = await _start()
    async with create_channel(f"127.0.0.1:{server.port}", max_attempts=1) as channel:
        raw = channel.unary_unary(
            f"/{SERVICE}/Rerank",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            # Field 2 (k) with wire type 2 and a truncated payload: not a RerankRequest.
            await raw(b"\x12\x05hello\xff\xff\xff", timeout=2)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid message" in (err.value.details() or "")
    await server.stop(0)


async def test_connections_are_recycled_without_failing_calls() -> None:
    # A client channel survives the server's GOAWAY at max age and keeps answering: the
    # reconnect is what lets a Kubernetes Service spread load over new replicas.
    server = GrpcServer(
        ServiceSettings(port=0, grace_period_s=0.5, max_connection_age_s=0.3), [SERVICE]
    )
    reranker_pb2_grpc.add_RerankerServiceServicer_to_server(_Probe(), server.server)
    await server.start()
    async with create_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reranker_pb2_grpc.RerankerServiceStub(channel)
        for _ in range(12):
            await stub.Rerank(reranker_pb2.RerankRequest(k=1), timeout=2)
            await asyncio.sleep(0.1)
    await server.stop(0)
