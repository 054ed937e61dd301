"""``recsys``: a command-line client of the recommender for people and scripts.

    recsys recommend --user alice -k 10 --method dpp --tradeoff 0.5
    recsys recommend --user alice --category "home > kitchen" --max-price 30
    recsys recommend --user alice --page-token TOKEN     # the next page the last one printed
    recsys recommend --user alice --explain          # why each item is on the list
    recsys log-event --user alice --item SKU-1 --type purchase
    recsys log-event --user alice --item SKU-1 --type view --recommendation-id ID --position 3
    recsys online-metrics --hours 24
    recsys experiments report --experiment diversity --hours 24
    recsys health --all
    recsys similar --item SKU-1 -k 10 --method dpp
    recsys catalog upsert --item SKU-9 --title "Blue mug" --category "home > mugs" --price 7.5
    recsys catalog unavailable --item SKU-9       # also: available, retire (ops.catalog)
    recsys --json recommend --user alice -k 5 --target orchestrator.prod:50050

``online-metrics`` and ``experiments report`` read the feature store (an operator's path,
not the public API: the figures aggregate every shopper's attributed events).

The coroutines below (``recommend``, ``log_events``) and ``shared.health`` are the same code
the local stack launcher and other teams' scripts call. Default ports and the default
trade-off are the services' own (their settings classes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from client.ports import DEFAULT_BASE_PORT, DEFAULT_HOST, stack_addresses
from devstack import triton_server
from services.orchestrator.config import OrchestratorSettings
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    feature_store_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from shared.health import check_health, check_triton

DEFAULT_SERVICES: dict[str, str] = stack_addresses()
DEFAULT_TARGET = DEFAULT_SERVICES["orchestrator"]
DEFAULT_STORE = DEFAULT_SERVICES["feature_store"]
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
    categories: Sequence[str] = (),
    exclude_categories: Sequence[str] = (),
    min_price: float | None = None,
    max_price: float | None = None,
    page_token: str = "",
) -> orchestrator_pb2.RecommendRequest:
    """A RecommendRequest; diversity settings are sent only when one of them is given, so the
    service defaults apply otherwise. Categories are paths such as "home > kitchen" (or
    "home/kitchen"); the service checks the filters and answers INVALID_ARGUMENT."""
    request = orchestrator_pb2.RecommendRequest(
        user_ref=user,
        k=k,
        context=dict(context or {}),
        excluded_item_ids=list(exclude),
        exclude_purchased=exclude_purchased,
        page_token=page_token,
    )
    request.filters.CopyFrom(filters(categories, exclude_categories, min_price, max_price))
    if method is not None or tradeoff is not None or max_per_category:
        request.diversity.CopyFrom(
            orchestrator_pb2.DiversitySettings(
                method=METHODS[method] if method else common_pb2.RERANK_METHOD_UNSPECIFIED,
                tradeoff=DEFAULT_TRADEOFF if tradeoff is None else tradeoff,
                max_per_category=max_per_category,
            )
        )
    return request


def filters(
    categories: Sequence[str] = (),
    exclude_categories: Sequence[str] = (),
    min_price: float | None = None,
    max_price: float | None = None,
) -> common_pb2.Filters:
    """The Filters message of the CLI's category and price flags."""
    message = common_pb2.Filters(
        include_categories=[category_prefix(c) for c in categories],
        exclude_categories=[category_prefix(c) for c in exclude_categories],
    )
    if min_price is not None:
        message.min_price = min_price
    if max_price is not None:
        message.max_price = max_price
    return message


def category_prefix(path: str) -> common_pb2.CategoryPrefix:
    """ "home > kitchen" or "home/kitchen" as a prefix; empty levels are kept, for the
    service to refuse with its message."""
    levels = [level.strip() for level in re.split(r"[>/]", path)] if path.strip() else []
    return common_pb2.CategoryPrefix(levels=levels)


def similar_request(
    item: str,
    k: int,
    *,
    method: str | None = None,
    tradeoff: float | None = None,
    max_per_category: int = 0,
    exclude: Sequence[str] = (),
    categories: Sequence[str] = (),
    exclude_categories: Sequence[str] = (),
    min_price: float | None = None,
    max_price: float | None = None,
) -> orchestrator_pb2.SimilarItemsRequest:
    """A SimilarItemsRequest; diversity settings and filters as in ``recommend_request``."""
    request = orchestrator_pb2.SimilarItemsRequest(
        item_id=item,
        k=k,
        excluded_item_ids=list(exclude),
        filters=filters(categories, exclude_categories, min_price, max_price),
    )
    if method is not None or tradeoff is not None or max_per_category:
        request.diversity.CopyFrom(
            recommend_request(
                "-", 1, method=method, tradeoff=tradeoff, max_per_category=max_per_category
            ).diversity
        )
    return request


async def similar(
    target: str, request: orchestrator_pb2.SimilarItemsRequest, timeout_s: float = 5.0
) -> orchestrator_pb2.SimilarItemsResponse:
    async with create_channel(target) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        return await stub.SimilarItems(request, timeout=timeout_s)


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
    recommendation_id: str = "",
    position: int = 0,
) -> orchestrator_pb2.ShopperEvent:
    """One event; a random id when none is given (resending the same id is harmless). The
    recommendation id and 1-based position attribute it to a served list."""
    event = orchestrator_pb2.ShopperEvent(
        event_id=event_id or uuid.uuid4().hex,
        user_ref=user,
        item_id=item,
        type=EVENT_TYPES[event_type],
        quantity=quantity,
        recommendation_id=recommendation_id,
        position=position,
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


def event_window(hours: float, end: datetime | None = None) -> feature_store_pb2.EventWindow:
    """The window of the ``hours`` before ``end`` (now when None)."""
    stop = (end or datetime.now(UTC)).astimezone(UTC)
    window = feature_store_pb2.EventWindow()
    window.start_time.FromDatetime(stop - timedelta(hours=hours))
    window.end_time.FromDatetime(stop)
    return window


async def online_metrics(
    target: str, window: feature_store_pb2.EventWindow, timeout_s: float = 5.0
) -> feature_store_pb2.GetOnlineMetricsResponse:
    async with create_channel(target) as channel:
        stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        return await stub.GetOnlineMetrics(
            feature_store_pb2.GetOnlineMetricsRequest(window=window), timeout=timeout_s
        )


async def experiment_report(
    target: str,
    experiment: str,
    window: feature_store_pb2.EventWindow,
    control: str = "",
    timeout_s: float = 5.0,
) -> feature_store_pb2.GetExperimentReportResponse:
    async with create_channel(target) as channel:
        stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        return await stub.GetExperimentReport(
            feature_store_pb2.GetExperimentReportRequest(
                experiment=experiment, window=window, control_variant=control
            ),
            timeout=timeout_s,
        )


def _rate(r: feature_store_pb2.RateEstimate) -> str:
    return f"{r.count:>6} {100 * r.rate:6.2f}% [{100 * r.ci_low:5.2f}, {100 * r.ci_high:5.2f}]"


METRIC_HEADER = (
    f"{'':<16} {'lists':>6} {'impr.':>7}  {'clicks (rate, 95% CI)':<30} "
    f"{'add to cart':<30} {'purchases':<30}"
)


def _metric_line(row: feature_store_pb2.MetricRow) -> str:
    return (
        f"{row.key:<16} {row.served_lists:>6} {row.impressions:>7}  {_rate(row.clicks):<30} "
        f"{_rate(row.add_to_carts):<30} {_rate(row.purchases):<30}"
    )


def format_online_metrics(response: feature_store_pb2.GetOnlineMetricsResponse) -> str:
    """Tables per position, method and variant, then the total and the unmatched events."""
    lines = []
    for title, rows in (
        ("position", response.by_position),
        ("method", response.by_method),
        ("experiment/variant", response.by_variant),
    ):
        lines += [f"by {title}:", METRIC_HEADER, *(_metric_line(r) for r in rows), ""]
    lines += ["total:", METRIC_HEADER, _metric_line(response.total)]
    lines.append(f"attributed events matching no served list: {response.unmatched_event_count}")
    return "\n".join(lines)


def _diff(d: feature_store_pb2.RateDifference) -> str:
    return f"{100 * d.difference:+6.2f} pp [{100 * d.ci_low:+6.2f}, {100 * d.ci_high:+6.2f}]"


def format_experiment_report(response: feature_store_pb2.GetExperimentReportResponse) -> str:
    """Each variant's rates, then each variant's differences from the control."""
    if not response.variants:
        return f"experiment {response.experiment}: no lists served in the window"
    lines = [
        f"experiment {response.experiment} (control: {response.control_variant})",
        METRIC_HEADER,
        *(_metric_line(v.metrics) for v in response.variants),
        "",
        f"difference from {response.control_variant} (percentage points, 95% CI, Newcombe):",
        f"{'':<16} {'clicks':<28} {'add to cart':<28} {'purchases':<28}",
    ]
    for v in response.variants:
        if v.metrics.key == response.control_variant:
            continue
        lines.append(
            f"{v.metrics.key:<16} {_diff(v.click_difference):<28} "
            f"{_diff(v.add_to_cart_difference):<28} {_diff(v.purchase_difference):<28}"
        )
    return "\n".join(lines)


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


def format_reason(reason: orchestrator_pb2.RecommendationReason) -> str:
    """One reason as a line: its text, then its kind and what it refers to."""
    kind = orchestrator_pb2.ReasonKind.Name(reason.kind).removeprefix("REASON_KIND_").lower()
    refs = [f"item {reason.history_item_id}"] if reason.history_item_id else []
    refs += [f"category {reason.category}"] if reason.category else []
    return f"{reason.text} [{kind}{': ' + ', '.join(refs) if refs else ''}]"


def format_recommendations(
    response: orchestrator_pb2.RecommendResponse | orchestrator_pb2.SimilarItemsResponse,
    *,
    explain: bool = False,
) -> str:
    """A readable table of the items (with ``explain``, each item's reasons below it), then
    degraded stages, versions and the trace id."""
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
        if explain:
            lines += [f"{'':>4}- {format_reason(r)}" for r in item.reasons]
        if explain and item.contributions:
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
    if not isinstance(response, orchestrator_pb2.RecommendResponse):
        lines.append(f"trace id: {response.trace_id or '-'}")
        return "\n".join(lines)
    if response.filtered_short:
        lines.append(
            f"short: {len(response.items)} items; the filters, exclusions or earlier pages "
            f"left no more ({response.filtered_out_count} candidates filtered out)"
        )
    if response.experiment_assignments:
        lines.append(
            "experiments: "
            + ", ".join(f"{a.experiment}={a.variant}" for a in response.experiment_assignments)
        )
    lines.append(f"recommendation id: {response.recommendation_id or '-'}")
    lines.append(f"trace id: {response.trace_id or '-'}")
    lines.append(f"next page: --page-token {response.next_page_token or '- (none)'}")
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


def _aware(when: datetime | None) -> datetime | None:
    """A naive ``--end`` is read as UTC."""
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def _add_filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="PATH",
        help='only items under this category path, e.g. "home > kitchen"; repeatable (any)',
    )
    parser.add_argument(
        "--exclude-category",
        action="append",
        default=[],
        metavar="PATH",
        help="never items under this category path; repeatable",
    )
    parser.add_argument("--min-price", type=float, help="lowest unit price, inclusive")
    parser.add_argument("--max-price", type=float, help="highest unit price, inclusive")


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
    _add_filter_flags(rec)
    rec.add_argument(
        "--page-token", default="", help="the next page token a previous answer printed"
    )
    rec.add_argument("--explain", action="store_true", help="print why each item is listed")

    sim = sub.add_parser("similar", help="items similar to one item (product pages)")
    sim.add_argument("--target", default=DEFAULT_TARGET, help="orchestrator host:port")
    sim.add_argument("--item", required=True, help="the seed item's id")
    sim.add_argument("-k", type=int, default=10, help="number of items")
    sim.add_argument("--method", choices=sorted(METHODS), help="diversification method")
    sim.add_argument("--tradeoff", type=float, help="0 = most similar .. 1 = most diverse")
    sim.add_argument("--max-per-category", type=int, default=0, help="0 = no cap")
    sim.add_argument("--exclude", nargs="*", default=[], help="item ids never to show")
    _add_filter_flags(sim)

    # The live-catalog job's own command line (python -m ops.catalog --help), so its options
    # and help stay in one place; add_help=False passes --help through to it.
    cat = sub.add_parser(
        "catalog", add_help=False, help="upsert / unavailable / available / retire items"
    )
    cat.add_argument("catalog_args", nargs=argparse.REMAINDER)

    ev = sub.add_parser("log-event", help="record one shopper event")
    ev.add_argument("--target", default=DEFAULT_TARGET, help="orchestrator host:port")
    ev.add_argument("--user", required=True)
    ev.add_argument("--item", required=True)
    ev.add_argument("--type", choices=sorted(EVENT_TYPES), default="view")
    ev.add_argument("--event-id", help="idempotency key; random when omitted")
    ev.add_argument("--quantity", type=int, default=1)
    ev.add_argument("--recommendation-id", default="", help="the list the shopper acted from")
    ev.add_argument("--position", type=int, default=0, help="1-based position in that list")

    def window_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--target", default=DEFAULT_STORE, help="feature store host:port")
        p.add_argument("--hours", type=float, default=24.0, help="window length before --end")
        p.add_argument(
            "--end", type=datetime.fromisoformat, help="window end, ISO 8601 (default: now)"
        )

    om = sub.add_parser("online-metrics", help="impressions, clicks, add-to-cart, purchases")
    window_args(om)
    exp = sub.add_parser("experiments", help="A/B experiments")
    exp_sub = exp.add_subparsers(dest="experiments_command", required=True)
    report = exp_sub.add_parser("report", help="compare an experiment's variants")
    window_args(report)
    report.add_argument("--experiment", required=True, help="experiment name")
    report.add_argument("--control", default="", help="variant to compare with")

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
            categories=args.category,
            exclude_categories=args.exclude_category,
            min_price=args.min_price,
            max_price=args.max_price,
            page_token=args.page_token,
        )
        response = await recommend(args.target, request, args.timeout)
        print(
            _to_json(response)
            if args.json
            else format_recommendations(response, explain=args.explain)
        )
        return 0
    if args.command == "similar":
        sim_request = similar_request(
            args.item,
            args.k,
            method=args.method,
            tradeoff=args.tradeoff,
            max_per_category=args.max_per_category,
            exclude=args.exclude,
            categories=args.category,
            exclude_categories=args.exclude_category,
            min_price=args.min_price,
            max_price=args.max_price,
        )
        found = await similar(args.target, sim_request, args.timeout)
        print(_to_json(found) if args.json else format_recommendations(found))
        return 0
    if args.command == "log-event":
        event = shopper_event(
            args.user,
            args.item,
            args.type,
            event_id=args.event_id,
            quantity=args.quantity,
            recommendation_id=args.recommendation_id,
            position=args.position,
        )
        ack = await log_events(args.target, [event], args.timeout)
        if args.json:
            print(_to_json(ack))
        else:
            print(f"accepted={ack.accepted_count} duplicates={ack.duplicate_count}")
        return 0
    if args.command == "online-metrics":
        window = event_window(args.hours, _aware(args.end))
        metrics = await online_metrics(args.target, window, args.timeout)
        print(_to_json(metrics) if args.json else format_online_metrics(metrics))
        return 0
    if args.command == "experiments":
        window = event_window(args.hours, _aware(args.end))
        got = await experiment_report(
            args.target, args.experiment, window, args.control, args.timeout
        )
        print(_to_json(got) if args.json else format_experiment_report(got))
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
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "catalog":
        # Imported here: the job's upsert needs the offline extra, its withdrawals do not.
        from ops.catalog import main as catalog_main

        return catalog_main([*unknown, *args.catalog_args], prog="recsys catalog")
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
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
