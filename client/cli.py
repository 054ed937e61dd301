"""``recsys``: a command-line client of the recommender for people and scripts.

    recsys recommend --user alice -k 10 --method dpp --tradeoff 0.5
    recsys log-event --user alice --item SKU-1 --type purchase
    recsys health --all
    recsys --json recommend --user alice -k 5 --target orchestrator.prod:50050

The coroutines below (``recommend``, ``log_events``) and ``shared.health`` are the same code
the local stack launcher and other teams' scripts call. Default ports and the default
trade-off are the services' own (their settings classes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from client.ports import DEFAULT_BASE_PORT, DEFAULT_HOST, stack_addresses
from devstack import triton_server
from services.orchestrator.config import OrchestratorSettings
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from shared.health import check_health, check_triton

DEFAULT_SERVICES: dict[str, str] = stack_addresses()
DEFAULT_TARGET = DEFAULT_SERVICES["orchestrator"]
DEFAULT_TRITON_HTTP = f"{DEFAULT_HOST}:{triton_server.HTTP_PORT}"
DEFAULT_TRADEOFF: float = OrchestratorSettings.model_fields["default_tradeoff"].default
METHODS = {
    "dpp": common_pb2.RERANK_METHOD_DPP,
    "mmr": common_pb2.RERANK_METHOD_MMR,
    "none": common_pb2.RERANK_METHOD_NONE,
}
EVENT_TYPES = {
    "view": common_pb2.EVENT_TYPE_VIEW,
    "add_to_cart": common_pb2.EVENT_TYPE_ADD_TO_CART,
    "purchase": common_pb2.EVENT_TYPE_PURCHASE,
}


def recommend_request(
    user: str,
    k: int,
    *,
    method: str | None = None,
    tradeoff: float | None = None,
    max_per_category: int = 0,
    exclude: Sequence[str] = (),
    exclude_purchased: bool = False,
    context: Mapping[str, str] | None = None,
) -> orchestrator_pb2.RecommendRequest:
    """A RecommendRequest; diversity settings are sent only when one of them is given, so the
    service defaults apply otherwise."""
    request = orchestrator_pb2.RecommendRequest(
        user_ref=user,
        k=k,
        context=dict(context or {}),
        excluded_item_ids=list(exclude),
        exclude_purchased=exclude_purchased,
    )
    if method is not None or tradeoff is not None or max_per_category:
        request.diversity.CopyFrom(
            orchestrator_pb2.DiversitySettings(
                method=METHODS[method] if method else common_pb2.RERANK_METHOD_UNSPECIFIED,
                tradeoff=DEFAULT_TRADEOFF if tradeoff is None else tradeoff,
                max_per_category=max_per_category,
            )
        )
    return request


async def recommend(
    target: str, request: orchestrator_pb2.RecommendRequest, timeout_s: float = 5.0
) -> orchestrator_pb2.RecommendResponse:
    async with create_channel(target) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.Recommend(request, timeout=timeout_s)


def shopper_event(
    user: str,
    item: str,
    event_type: str,
    *,
    event_id: str | None = None,
    quantity: int = 1,
    when: datetime | None = None,
) -> orchestrator_pb2.ShopperEvent:
    """One event; a random id when none is given (resending the same id is harmless)."""
    event = orchestrator_pb2.ShopperEvent(
        event_id=event_id or uuid.uuid4().hex,
        user_ref=user,
        item_id=item,
        type=EVENT_TYPES[event_type],
        quantity=quantity,
    )
    if when is not None:
        event.timestamp.FromDatetime(when.astimezone(UTC))
    return event


async def log_events(
    target: str, events: Sequence[orchestrator_pb2.ShopperEvent], timeout_s: float = 5.0
) -> orchestrator_pb2.LogEventsResponse:
    async with create_channel(target) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.LogEvents(
            orchestrator_pb2.LogEventsRequest(events=list(events)), timeout=timeout_s
        )


@dataclass
class HealthRow:
    name: str
    target: str
    status: str


async def check_all(
    services: Mapping[str, str] = DEFAULT_SERVICES, triton_http: str | None = DEFAULT_TRITON_HTTP
) -> list[HealthRow]:
    names = list(services)
    statuses = await asyncio.gather(*(check_health(services[n]) for n in names))
    rows = [HealthRow(n, services[n], s) for n, s in zip(names, statuses, strict=True)]
    if triton_http:
        status = await asyncio.to_thread(check_triton, triton_http)
        rows.append(HealthRow("triton", triton_http, status))
    return rows


def format_recommendations(response: orchestrator_pb2.RecommendResponse) -> str:
    """A readable table of the items, then degraded stages, versions and the trace id."""
    lines = [f"{'#':>2}  {'item':<12} {'score':>8} {'relev.':>8} {'retr.':>7}  title / category"]
    for i, item in enumerate(response.items, 1):
        category = "/".join(item.category_path)
        stages = ",".join(
            common_pb2.Stage.Name(s).removeprefix("STAGE_").lower() for s in item.stages
        )
        lines.append(
            f"{i:>2}  {item.item_id:<12} {item.score:>8.3f} {item.relevance_score:>8.3f} "
            f"{item.retrieval_score:>7.3f}  {item.title} ({category}) [{stages}]"
        )
        if item.contributions:
            # The learned ranking model's strongest reasons for this item's relevance.
            lines.append(
                "    why: " + ", ".join(f"{c.feature} {c.value:+.3f}" for c in item.contributions)
            )
    if response.degraded_stages:
        flags = ", ".join(
            f"{common_pb2.Stage.Name(d.stage).removeprefix('STAGE_').lower()}: {d.reason}"
            for d in response.degraded_stages
        )
        lines.append(f"degraded: {flags}")
    else:
        lines.append("degraded: none (full pipeline)")
    if response.versions:
        lines.append(
            "versions: " + ", ".join(f"{k}={v}" for k, v in sorted(response.versions.items()))
        )
    lines.append(f"trace id: {response.trace_id or '-'}")
    return "\n".join(lines)


def _to_json(message: Message) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


def _parse_context(pairs: Sequence[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--context expects key=value, got {pair!r}")
        context[key] = value
    return context


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description="Client of the recommender.")
    parser.add_argument("--json", action="store_true", help="print responses as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds")
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("recommend", help="ask for recommendations")
    rec.add_argument("--target", default=DEFAULT_TARGET, help="orchestrator host:port")
    rec.add_argument("--user", required=True, help="the shopper's own user reference")
    rec.add_argument("-k", type=int, default=10, help="number of items")
    rec.add_argument("--method", choices=sorted(METHODS), help="diversification method")
    rec.add_argument("--tradeoff", type=float, help="0 = relevance only .. 1 = most diverse")
    rec.add_argument("--max-per-category", type=int, default=0, help="0 = no cap")
    rec.add_argument("--exclude", nargs="*", default=[], help="item ids never to show")
    rec.add_argument("--exclude-purchased", action="store_true", help="hide bought items")
    rec.add_argument("--context", nargs="*", default=[], help="key=value request context")

    ev = sub.add_parser("log-event", help="record one shopper event")
    ev.add_argument("--target", default=DEFAULT_TARGET, help="orchestrator host:port")
    ev.add_argument("--user", required=True)
    ev.add_argument("--item", required=True)
    ev.add_argument("--type", choices=sorted(EVENT_TYPES), default="view")
    ev.add_argument("--event-id", help="idempotency key; random when omitted")
    ev.add_argument("--quantity", type=int, default=1)

    health = sub.add_parser("health", help="grpc.health.v1 readiness")
    health.add_argument("--target", default=DEFAULT_TARGET, help="host:port to check")
    health.add_argument("--service", default="", help="service name; '' is overall readiness")
    health.add_argument("--all", action="store_true", help="every service of the local stack")
    health.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help="with --all: the stack's orchestrator port (the others follow, as run_stack.py)",
    )
    health.add_argument("--triton-http", default=DEFAULT_TRITON_HTTP, help="Triton HTTP port")
    return parser


async def _run(args: argparse.Namespace) -> int:
    if args.command == "recommend":
        request = recommend_request(
            args.user,
            args.k,
            method=args.method,
            tradeoff=args.tradeoff,
            max_per_category=args.max_per_category,
            exclude=args.exclude,
            exclude_purchased=args.exclude_purchased,
            context=_parse_context(args.context),
        )
        response = await recommend(args.target, request, args.timeout)
        print(_to_json(response) if args.json else format_recommendations(response))
        return 0
    if args.command == "log-event":
        event = shopper_event(
            args.user, args.item, args.type, event_id=args.event_id, quantity=args.quantity
        )
        ack = await log_events(args.target, [event], args.timeout)
        if args.json:
            print(_to_json(ack))
        else:
            print(f"accepted={ack.accepted_count} duplicates={ack.duplicate_count}")
        return 0
    rows = (
        await check_all(stack_addresses(args.base_port), triton_http=args.triton_http)
        if args.all
        else [HealthRow(args.target, args.target, await check_health(args.target, args.service))]
    )
    if args.json:
        print(json.dumps([vars(r) for r in rows]))
    else:
        for row in rows:
            print(f"{row.name:<16} {row.target:<22} {row.status}")
    return 0 if all(r.status == "SERVING" for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
