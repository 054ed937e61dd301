"""Domain exceptions that carry a gRPC status, and the server interceptor that maps them.

Domain code raises these (it never imports grpc); the interceptor turns them into statuses.
Anything else becomes INTERNAL with a generic message so internals never leak to callers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of errors that map to a gRPC status; the message is shown to the caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request is malformed; the message names the field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    """A named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    """The system is not in a state that allows the operation (e.g. privacy budget spent)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    """A dependency is down or not ready; callers may retry or fall back."""

    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(ServiceError):
    """The caller's verified identity may not use this method."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ServiceError):
    """Load is shed or a size limit is exceeded."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ServiceError):
    """The caller's time budget ran out."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


# Downstream statuses passed through unchanged; anything else becomes INTERNAL.
_PASS_THROUGH = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
}

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class _Undecodable:
    """Stands in for a request whose bytes are not the expected message."""


_UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    # grpc turns an exception in the deserializer into UNKNOWN with no detail; a request
    # that is not the expected message is the caller's error, so the handler reports it.
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return _UNDECODABLE

    return parse


def _wrap(method: str, inner: Handler) -> Handler:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is _UNDECODABLE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid message for {method}",
            )
        try:
            return await inner(request, context)
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            log.warning("downstream call failed", extra={"method": method, "code": code.name})
            if code in _PASS_THROUGH:
                await context.abort(code, f"a dependency failed: {code.name}")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unhandled error", extra={"method": method})
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    return handler


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Maps ServiceError subclasses and unexpected exceptions of unary handlers to statuses."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _wrap(handler_call_details.method, handler.unary_unary),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
