"""Outbound gRPC channels: tracing interceptors, bounded retries on UNAVAILABLE, TLS, and
cancellation that reaches the server when the caller gives up (shared.cancellation).

Retries use gRPC's own retry policy (service config), limited to UNAVAILABLE, which is safe
for our idempotent reads and for event ingestion (idempotent by event id). Deadlines are per
call, from the caller's Budget (shared.deadline).
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from pydantic import BaseModel

from shared.cancellation import CancelPropagatingInterceptor


class TlsClientConfig(BaseModel):
    """Client-side TLS: the CA to trust, and a client certificate for mTLS."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    server_name_override: str | None = None


def _service_config(max_attempts: int) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{}],
                    "retryPolicy": {
                        "maxAttempts": max_attempts,
                        "initialBackoff": "0.02s",
                        "maxBackoff": "0.2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def create_channel(
    target: str,
    *,
    tls: TlsClientConfig | None = None,
    max_attempts: int = 3,
) -> grpc.aio.Channel:
    """An aio channel to ``target`` with tracing and UNAVAILABLE-only bounded retries."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    options: list[tuple[str, str | int]] = [
        ("grpc.enable_retries", 1 if max_attempts > 1 else 0),
        ("grpc.service_config", _service_config(max(2, max_attempts))),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.keepalive_time_ms", 30_000),
        # gRPC's default reconnect backoff grows to 120 s: a dependency that restarted would
        # stay "down" to us for minutes. Cap it so recovery follows the restart closely.
        # grpc.min_reconnect_backoff_ms stays at its default: gRPC also uses it as the
        # connect timeout, and a short one would fail slow handshakes (TLS across zones).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    # The first interceptor is the outermost: cancellation is fixed up inside the tracing.
    interceptors = [*aio_client_interceptors(), CancelPropagatingInterceptor()]
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ValueError("a client certificate needs both cert_file and key_file")
    if tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(tls.ca_file).read_bytes(),
        private_key=Path(tls.key_file).read_bytes() if tls.key_file else None,
        certificate_chain=Path(tls.cert_file).read_bytes() if tls.cert_file else None,
    )
    return grpc.aio.secure_channel(target, creds, options=options, interceptors=interceptors)
