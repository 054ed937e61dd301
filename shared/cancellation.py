"""Client cancellation that reaches the wire through tracing interceptors.

opentelemetry-instrumentation-grpc's aio client interceptor awaits the call's status inside
the interceptor chain (to put it on the span). When the caller is cancelled (its own RPC was
cancelled, or its budget ran out), that wait is what gets cancelled, and the RPC underneath
runs on to its deadline: the server keeps computing for nobody
(open-telemetry/opentelemetry-python-contrib#3271). ``CancelPropagatingInterceptor``, placed
inside the tracing interceptor, hands the chain a call whose waits cancel the RPC itself
when they are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import grpc


class _CancellingCall(grpc.aio.UnaryUnaryCall):
    """A unary-unary call whose awaits, when cancelled, cancel the RPC."""

    def __init__(self, call: grpc.aio.UnaryUnaryCall) -> None:
        self._call = call

    async def _guard(self, wait: Awaitable[Any]) -> Any:
        try:
            return await wait
        except asyncio.CancelledError:
            self._call.cancel()
            raise

    def __await__(self) -> Generator[Any, None, Any]:
        return self._guard(self._call).__await__()

    async def code(self) -> grpc.StatusCode:
        return await self._guard(self._call.code())

    async def details(self) -> str:
        return await self._guard(self._call.details())

    async def initial_metadata(self) -> Any:
        return await self._guard(self._call.initial_metadata())

    async def trailing_metadata(self) -> Any:
        return await self._guard(self._call.trailing_metadata())

    async def wait_for_connection(self) -> None:
        await self._guard(self._call.wait_for_connection())

    def cancelled(self) -> bool:
        return bool(self._call.cancelled())

    def done(self) -> bool:
        return bool(self._call.done())

    def time_remaining(self) -> float | None:
        return self._call.time_remaining()

    def cancel(self) -> bool:
        return bool(self._call.cancel())

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._call.add_done_callback(callback)


class CancelPropagatingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Makes a cancelled wait on a unary-unary call cancel the RPC (see the module doc)."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        call = await continuation(client_call_details, request)
        return _CancellingCall(call)
