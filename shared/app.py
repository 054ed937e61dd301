"""A servable service: its gRPC server and what it owns, started and stopped in one order.

Each service's composition root ``build_<name>(settings)`` returns a ``ServiceApp``;
``python -m services.<name>`` runs it with ``run_service`` (``serve`` under logging and
telemetry), tests and in-process benchmarks use it as an async context manager. Build it
inside a running event loop: grpc.aio binds a server to the loop it was created in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from shared.logging import configure_logging
from shared.server import GrpcServer, run_until_signal
from shared.settings import ServiceSettings
from shared.telemetry import setup_telemetry

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
ServicerT = TypeVar("ServicerT")


def limit_blas_threads(threads: int) -> None:
    """Cap the process's BLAS/LAPACK thread pools (numpy's OpenBLAS) at ``threads``;
    process-wide, so the last service started in a process sets it. OpenMP pools (torch's
    intra-op threads, FAISS) keep their own settings (the ranker's ``torch_threads``)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


class ServiceApp(Generic[SettingsT, ServicerT]):
    """A service's settings, its gRPC server and the servicer registered on it, and what the
    subclass adds. Start: bind (readiness NOT_SERVING), then the service's own start-up
    (readiness rule, background tasks). Stop: readiness off, drain, stop the server, then
    release resources."""

    def __init__(self, settings: SettingsT, server: GrpcServer, servicer: ServicerT) -> None:
        self.settings = settings
        self.server = server
        self.servicer = servicer

    @property
    def port(self) -> int:
        """The bound port; 0 before ``start``."""
        return self.server.port

    async def on_start(self) -> None:
        """Runs once the server listens; decides when readiness turns SERVING."""

    async def close(self) -> None:
        """Releases what the service owns (tasks, clients, executors) once the server stopped."""

    async def start(self) -> int:
        """Serve and return the bound port; on a failed start, release everything again."""
        limit_blas_threads(self.settings.blas_threads)
        try:
            port = await self.server.start()
        except BaseException:
            await self.close()
            raise
        try:
            await self.on_start()
        except BaseException:
            await self.stop(0)
            raise
        return port

    async def stop(self, grace: float | None = None) -> None:
        """Drain for ``grace`` seconds (the settings' grace period by default), then close."""
        await self.server.stop(grace)
        await self.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(
    build: Callable[[SettingsT], ServiceApp[SettingsT, Any]],
    settings: SettingsT,
    *,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Build the app in this loop, start it and serve until SIGTERM/SIGINT (or ``stop_event``),
    then drain, stop and close it. Flushing telemetry stays with the caller, which set it up."""
    app = build(settings)
    await app.start()
    await run_until_signal(app.server, on_shutdown=[app.close], stop_event=stop_event)


def run_service(
    build: Callable[[SettingsT], ServiceApp[SettingsT, Any]],
    settings_type: type[SettingsT],
    name: str,
) -> None:
    """The whole of ``python -m services.<name>``: settings from the environment (the class's
    ``RECSYS_<NAME>_*`` variables), JSON logs and telemetry as ``name``, ``serve`` until a
    signal, then flush the telemetry, also when serving failed."""
    # Values come from the environment or the fields' defaults; mypy cannot see pydantic's
    # positional Field defaults, nor that required fields are read from the environment.
    settings = settings_type()  # type: ignore[call-arg]
    configure_logging(name, settings.log_level)
    telemetry = setup_telemetry(
        name,
        traces_dir=settings.traces_dir,
        max_bytes=settings.traces_max_bytes,
        backups=settings.traces_backups,
    )
    try:
        asyncio.run(serve(build, settings))
    finally:
        telemetry.shutdown()
