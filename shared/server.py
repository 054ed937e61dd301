"""gRPC server bootstrap: grpc.aio, health with real readiness, reflection, tracing,
error mapping, optional TLS/mTLS, and graceful shutdown on SIGTERM/SIGINT.

Health has two entries: ``liveness`` (SERVING while the process runs) and ``""`` plus each
service name, which start NOT_SERVING and turn SERVING only when the service says it can
really serve (index loaded, model ready, database reachable).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

from shared.errors import ErrorMappingInterceptor
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

LIVENESS = "liveness"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured; mTLS when a client CA is too."""
    if not settings.tls_cert_file:
        # A key or client CA without a certificate would silently serve plaintext.
        if settings.tls_key_file or settings.tls_client_ca_file:
            raise ValueError("tls_cert_file is required with tls_key_file or tls_client_ca_file")
        return None
    if not settings.tls_key_file:
        raise ValueError("tls_key_file is required with tls_cert_file")
    key = Path(settings.tls_key_file).read_bytes()
    cert = Path(settings.tls_cert_file).read_bytes()
    ca = Path(settings.tls_client_ca_file).read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


class GrpcServer:
    """One grpc.aio server with the standard plumbing; services register onto ``.server``."""

    def __init__(
        self,
        settings: ServiceSettings,
        service_names: Sequence[str],
        *,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        self.settings = settings
        self.service_names = list(service_names)
        tracing = aio_server_interceptor(
            filter_=filters.negate(
                filters.any_of(
                    filters.health_check(),
                    filters.service_prefix("grpc.reflection"),
                )
            )
        )
        self.server = grpc.aio.server(
            interceptors=[tracing, ErrorMappingInterceptor(), *interceptors],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
                # GOAWAY after this age; in-flight calls get the grace period to finish.
                ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(settings.grace_period_s * 1000)),
            ],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        # Same servicer, so both ports always report the same status; the extra server
        # carries nothing else, so a plaintext port reveals health and nothing more.
        self.health_server: grpc.aio.Server | None = None
        if settings.health_port is not None:
            self.health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
        self.port = 0
        self.health_port = 0

    async def start(self) -> int:
        """Bind, start serving with readiness NOT_SERVING, and return the bound port."""
        await self.health.set(LIVENESS, _SERVING)
        for name in ["", *self.service_names]:
            await self.health.set(name, _NOT_SERVING)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        address = f"{self.settings.host}:{self.settings.port}"
        creds = server_credentials(self.settings)
        if creds is None:
            self.port = self.server.add_insecure_port(address)
        else:
            self.port = self.server.add_secure_port(address, creds)
        if self.port == 0:
            raise RuntimeError(f"could not bind {address}")
        await self.server.start()
        if self.health_server is not None:
            health_address = f"{self.settings.host}:{self.settings.health_port}"
            self.health_port = self.health_server.add_insecure_port(health_address)
            if self.health_port == 0:
                raise RuntimeError(f"could not bind {health_address}")
            await self.health_server.start()
        log.info(
            "listening",
            extra={"port": self.port, "tls": creds is not None, "health_port": self.health_port},
        )
        return self.port

    async def set_ready(self, ready: bool) -> None:
        status = _SERVING if ready else _NOT_SERVING
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Readiness off, drain in-flight RPCs for ``grace`` seconds, then stop."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.grace_period_s if grace is None else grace)
        if self.health_server is not None:
            await self.health_server.stop(0)


async def run_until_signal(
    server: GrpcServer,
    *,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    stop_event: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop_event``), then shut down in order:
    readiness off -> drain -> stop -> close clients and resources -> caller flushes tracing."""
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_s": server.settings.grace_period_s})
    await server.stop()
    for hook in on_shutdown:
        try:
            await hook()
        except Exception:
            log.exception("shutdown hook failed")
    log.info("stopped")
