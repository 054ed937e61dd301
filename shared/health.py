"""Readiness probes of a running service: grpc.health.v1 and plain HTTP endpoints.

The ``recsys health`` command and the local stack launcher both ask through these.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.channels import create_channel


async def check_health(target: str, service: str = "", timeout_s: float = 2.0) -> str:
    """The grpc.health.v1 status name of ``service`` at ``target``, or the failure code."""
    async with create_channel(target, max_attempts=1) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def check_http(url: str, timeout_s: float = 2.0) -> str:
    """SERVING when ``url`` answers 200, NOT_SERVING on another status, else UNAVAILABLE."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return "SERVING" if response.status == 200 else "NOT_SERVING"
    except urllib.error.HTTPError:
        return "NOT_SERVING"
    except OSError:
        return "UNAVAILABLE"


def check_triton(http_target: str, timeout_s: float = 2.0) -> str:
    """Triton's own readiness (``/v2/health/ready`` on its HTTP port)."""
    return check_http(f"http://{http_target}/v2/health/ready", timeout_s)
