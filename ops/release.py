"""Ask a running gateway for a DP release: ``python -m ops.release``.

For the local stack launcher after seeding, and for a Kubernetes CronJob that refreshes the
DP item popularity, e.g.::

    python -m ops.release --kind item_popularity --epsilon 1 \\
        --purpose popularity-fallback --address 127.0.0.1:50051

Each release covers an event-time window, by default the previous full UTC day, so a daily
run spends the budget of a new window each day (docs/privacy.md). Prints the release id, the
number of keys and the budget left in the window; FAILED_PRECONDITION (budget spent) and
INVALID_ARGUMENT exit with status 2 and the gateway's message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc

from ops import defaults
from shared.channels import TlsClientConfig, create_channel
from shared.event_window import EventWindow, utc_day_before, window_to_proto
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
    window: EventWindow | None = None,
) -> ReleaseSummary:
    """One ReleaseAggregates call over ``window`` (None: every event, which overlaps every
    other release in the budget); gRPC errors propagate as grpc.aio.AioRpcError."""
    request = privacy_gateway_pb2.ReleaseAggregatesRequest(
        kind=KINDS[kind],
        epsilon=epsilon,
        delta=delta,
        mechanism=MECHANISMS[mechanism],
        max_contributions_per_user=max_contributions,
        purpose=purpose,
    )
    if window is not None:
        request.event_window.CopyFrom(window_to_proto(window))
    async with create_channel(address, tls=tls) as channel:
        stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel)
        response = await stub.ReleaseAggregates(request, timeout=timeout_s)
    return ReleaseSummary(
        response.release_id,
        len(response.counts),
        response.epsilon_remaining,
        response.delta_remaining,
    )


def parse_instant(text: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or date-time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    """The command line (the Kubernetes Job and CronJob's command is checked against it)."""
    parser = argparse.ArgumentParser(
        prog="python -m ops.release",
        epilog="The release covers the events with window start <= time < window end. Without "
        "--window-start and --window-end that is the previous full UTC day (yesterday 00:00 "
        "to today 00:00 UTC), what a daily CronJob releases; releases over overlapping "
        "windows share one window's budget, disjoint windows each have their own.",
    )
    parser.add_argument(
        "--address", default=defaults.privacy_gateway_address(), help="privacy gateway"
    )
    parser.add_argument("--kind", choices=sorted(KINDS), default="item_popularity")
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--delta", type=float, default=0.0)
    parser.add_argument("--mechanism", choices=sorted(MECHANISMS), default="default")
    parser.add_argument("--max-contributions", type=int, default=0, help="0: service default")
    parser.add_argument("--purpose", required=True, help="recorded in the budget ledger")
    parser.add_argument(
        "--window-start",
        type=parse_instant,
        help="inclusive start of the event-time window, ISO 8601 (UTC without an offset); "
        "default: 00:00 UTC of the previous day",
    )
    parser.add_argument(
        "--window-end",
        type=parse_instant,
        help="exclusive end of the event-time window, ISO 8601, not in the future; "
        "default: 00:00 UTC today",
    )
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument(
        "--tls-ca-file", help="CA of the gateway's certificate; enables TLS (the cluster's mTLS)"
    )
    parser.add_argument("--tls-cert-file", help="client certificate for mTLS")
    parser.add_argument("--tls-key-file", help="client private key for mTLS")
    return parser


def release_window(start: datetime | None, end: datetime | None, now: datetime) -> EventWindow:
    """The window the flags ask for: both, or neither (the previous full UTC day)."""
    if start is None and end is None:
        return utc_day_before(now)
    if start is None or end is None:
        raise ValueError("--window-start and --window-end go together")
    if not start < end:
        raise ValueError("--window-start must be before --window-end")
    return EventWindow(start, end)


def main(argv: list[str] | None = None, *, clock: Callable[[], datetime] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    now = (clock or (lambda: datetime.now(UTC)))()
    try:
        window = release_window(args.window_start, args.window_end, now)
    except ValueError as exc:
        parser.error(str(exc))
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
                window=window,
            )
        )
    except grpc.aio.AioRpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        refused = {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}
        return 2 if exc.code() in refused else 1
    print(
        f"release {summary.release_id}: {summary.key_count} keys over {window}; "
        f"epsilon left in the window {summary.epsilon_remaining:g}, "
        f"delta left {summary.delta_remaining:g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
