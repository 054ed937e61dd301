"""Ask a running gateway for a DP release: ``python -m ops.release``.

For the local stack launcher after seeding, and for a Kubernetes CronJob that refreshes the
DP item popularity, e.g.::

    python -m ops.release --kind item_popularity --epsilon 1 \\
        --purpose popularity-fallback --address 127.0.0.1:50051

Prints the release id, the number of keys and the budget left; FAILED_PRECONDITION (budget
spent) and INVALID_ARGUMENT exit with status 2 and the gateway's message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

import grpc

from ops import defaults
from shared.channels import TlsClientConfig, create_channel
from shared.gen.acme.recsys.v1 import (
    feature_store_pb2,
    privacy_gateway_pb2,
    privacy_gateway_pb2_grpc,
)

KINDS = {
    "item_popularity": feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY,
    "category_trend": feature_store_pb2.AGGREGATE_KIND_CATEGORY_TREND,
}
MECHANISMS = {
    "default": privacy_gateway_pb2.NOISE_MECHANISM_UNSPECIFIED,
    "laplace": privacy_gateway_pb2.NOISE_MECHANISM_LAPLACE,
    "gaussian": privacy_gateway_pb2.NOISE_MECHANISM_GAUSSIAN,
}


@dataclass(frozen=True)
class ReleaseSummary:
    release_id: str
    key_count: int
    epsilon_remaining: float
    delta_remaining: float


async def request_release(
    address: str,
    *,
    kind: str,
    epsilon: float,
    purpose: str,
    delta: float = 0.0,
    mechanism: str = "default",
    max_contributions: int = 0,
    timeout_s: float = 60.0,
    tls: TlsClientConfig | None = None,
) -> ReleaseSummary:
    """One ReleaseAggregates call; gRPC errors propagate as grpc.aio.AioRpcError."""
    async with create_channel(address, tls=tls) as channel:
        stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel)
        response = await stub.ReleaseAggregates(
            privacy_gateway_pb2.ReleaseAggregatesRequest(
                kind=KINDS[kind],
                epsilon=epsilon,
                delta=delta,
                mechanism=MECHANISMS[mechanism],
                max_contributions_per_user=max_contributions,
                purpose=purpose,
            ),
            timeout=timeout_s,
        )
    return ReleaseSummary(
        response.release_id,
        len(response.counts),
        response.epsilon_remaining,
        response.delta_remaining,
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line (the Kubernetes Job and CronJob's command is checked against it)."""
    parser = argparse.ArgumentParser(prog="python -m ops.release")
    parser.add_argument(
        "--address", default=defaults.privacy_gateway_address(), help="privacy gateway"
    )
    parser.add_argument("--kind", choices=sorted(KINDS), default="item_popularity")
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--delta", type=float, default=0.0)
    parser.add_argument("--mechanism", choices=sorted(MECHANISMS), default="default")
    parser.add_argument("--max-contributions", type=int, default=0, help="0: service default")
    parser.add_argument("--purpose", required=True, help="recorded in the budget ledger")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument(
        "--tls-ca-file", help="CA of the gateway's certificate; enables TLS (the cluster's mTLS)"
    )
    parser.add_argument("--tls-cert-file", help="client certificate for mTLS")
    parser.add_argument("--tls-key-file", help="client private key for mTLS")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.tls_cert_file or args.tls_key_file) and not args.tls_ca_file:
        parser.error("--tls-cert-file and --tls-key-file need --tls-ca-file")
    if bool(args.tls_cert_file) != bool(args.tls_key_file):
        parser.error("--tls-cert-file and --tls-key-file go together")
    tls = (
        TlsClientConfig(
            ca_file=args.tls_ca_file, cert_file=args.tls_cert_file, key_file=args.tls_key_file
        )
        if args.tls_ca_file
        else None
    )
    try:
        summary = asyncio.run(
            request_release(
                args.address,
                kind=args.kind,
                epsilon=args.epsilon,
                purpose=args.purpose,
                delta=args.delta,
                mechanism=args.mechanism,
                max_contributions=args.max_contributions,
                timeout_s=args.timeout_s,
                tls=tls,
            )
        )
    except grpc.aio.AioRpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        refused = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}
        return 2 if exc.code() in refused else 1
    print(
        f"release {summary.release_id}: {summary.key_count} keys; "
        f"epsilon left {summary.epsilon_remaining:g}, delta left {summary.delta_remaining:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
