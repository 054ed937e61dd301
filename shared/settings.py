"""Settings base shared by every service; each service subclasses it with its own env prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.telemetry import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES


class ServiceSettings(BaseSettings):
    """Runtime knobs every gRPC service has.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="RECSYS_<NAME>_")``; tests
    construct them with keyword arguments. Tracing is configured by the standard ``OTEL_*``
    variables, not here.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 in containers.")
    port: int = Field(0, ge=0, le=65535, description="Port to bind; 0 picks a free port.")
    grace_period_s: float = Field(5.0, gt=0, description="Drain time on SIGTERM.")
    executor_workers: int = Field(4, ge=1, description="Threads for blocking work.")
    blas_threads: int = Field(
        1,
        ge=1,
        description="Threads of the BLAS/LAPACK pools (numpy's OpenBLAS) in this process. "
        "One by default: a request's linear algebra is small (a 64x64 ALS fold-in, a "
        "100-candidate DPP kernel), and waking a pool for it cost 40x the work on a 2-core box "
        "(docs/benchmarks.md); concurrency comes from requests running side by side.",
    )
    max_concurrent_rpcs: int | None = Field(
        None, ge=1, description="RPCs beyond this are refused with RESOURCE_EXHAUSTED."
    )
    max_connection_age_s: float = Field(
        300.0,
        gt=0,
        description="Clients are asked to reconnect after this long, so that behind a "
        "Kubernetes Service new replicas (HPA scale-up) get traffic from long-lived channels.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    traces_dir: str | None = Field(
        None,
        description="Directory for JSON-lines span files when no OTLP endpoint is set; "
        "unset means var/traces under the working directory.",
    )
    traces_max_bytes: int = Field(
        DEFAULT_MAX_BYTES,
        ge=4096,
        description="Size at which a JSON-lines span or metric file is rotated.",
    )
    traces_backups: int = Field(
        DEFAULT_BACKUPS,
        ge=0,
        description="Rotated files kept per span or metric file (<name>.jsonl.1 is the newest); "
        "a service's local telemetry never exceeds (backups + 1) x traces_max_bytes per file.",
    )
    tls_cert_file: str | None = Field(None, description="Server certificate (PEM); enables TLS.")
    tls_key_file: str | None = Field(None, description="Server private key (PEM).")
    tls_client_ca_file: str | None = Field(
        None, description="CA that client certificates must chain to; enables mTLS."
    )
    health_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Extra plaintext port that serves only grpc.health.v1 (no other service, "
        "no reflection), for probes that cannot present a client certificate (kubelet's "
        "native gRPC probes) when the main port requires mTLS; 0 picks a free port. Unset: no "
        "extra port.",
    )
