"""``python -m devstack.triton_traced``: the ranker's bundled Triton with
OpenTelemetry tracing exported to an OTLP/HTTP endpoint (the local stack's span sink).

The model repository, backend folder and environment are exactly those of
``devstack.triton_server`` (its functions build them); this only adds Triton's
``--trace-config`` flags, so each inference joins the caller's trace through the
``traceparent`` header the ranker sends and shows up in the request's trace tree.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from devstack.triton_server import (
    CPU_PRECISION_CHOICES,
    GRPC_PORT,
    HTTP_PORT,
    METRICS_PORT,
    ensure_repository,
    prepare_backend_dir,
    server_command,
    server_env,
)


def trace_flags(
    otlp_url: str, service_name: str = "triton", rate: int = 1, export_delay_ms: int = 500
) -> list[str]:
    """Triton 2.51's OpenTelemetry mode: every ``rate``-th request, timestamps only (no
    tensors, so no payload leaves the server), batch-exported as OTLP/HTTP JSON every
    ``export_delay_ms`` (Triton's default is 5 s; the local stack's services flush every
    0.5 s, so a request's trace is whole in the sink about when the answer arrives)."""
    settings = [
        "mode=opentelemetry",
        f"rate={rate}",
        "level=TIMESTAMPS",
        f"opentelemetry,url={otlp_url.rstrip('/')}/v1/traces",
        f"opentelemetry,resource=service.name={service_name}",
        f"opentelemetry,bsp_schedule_delay={export_delay_ms}",
    ]
    return [arg for s in settings for arg in ("--trace-config", s)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devstack.triton_traced")
    p.add_argument("--model-dir", default="var/models/ranker", help="ranker artefact or root")
    p.add_argument("--grpc-port", type=int, default=GRPC_PORT)
    p.add_argument("--http-port", type=int, default=HTTP_PORT)
    p.add_argument("--metrics-port", type=int, default=METRICS_PORT)
    p.add_argument("--otlp-url", help="host:port of an OTLP/HTTP receiver (needed to serve)")
    p.add_argument(
        "--cpu-precision",
        choices=CPU_PRECISION_CHOICES,
        default="auto",
        help="what a repository exported here serves; auto measures the fastest that ranks "
        "like fp32 on this machine (a minute or so, once)",
    )
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="export the repository (measuring the precision) and exit without serving",
    )
    args = p.parse_args(argv)
    if not args.prepare_only and not args.otlp_url:
        p.error("--otlp-url is required to serve")
    repo = ensure_repository(Path(args.model_dir), "cpu", cpu_precision=args.cpu_precision)
    if args.prepare_only:
        print(repo)
        return 0
    backends = prepare_backend_dir(repo.parent / "_server" / "backends")
    cmd = server_command(
        repo,
        backends,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
    ) + trace_flags(args.otlp_url)
    proc = subprocess.Popen(cmd, env=server_env())

    def forward(signum: int, _frame: FrameType | None) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return int(proc.wait())


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
