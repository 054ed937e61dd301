"""Load benchmark of the running local stack, side by side with the same pipeline in-process.

    bash scripts/run.sh --no-demo &            # or: python scripts/run_stack.py --no-demo
    python scripts/load_bench.py [--requests 200] [--concurrency 4] [--rate 4]
        [--max-seconds 120] [--record docs/benchmarks.md]

Three runs, each bounded in request count AND wall time, on loopback only:
1. closed loop over gRPC: --concurrency workers, each sending the next Recommend when the
   previous answer arrives;
2. open loop over gRPC: arrivals at a fixed --rate (requests/s), latency measured from the
   scheduled send time so a slow server cannot hide queueing (no coordinated omission);
3. closed loop IN-PROCESS: the same orchestrator Pipeline and RecommendationServicer, and the
   same five servicers (same databases, index, model and Triton server as the stack), called
   as Python objects with no gRPC in between; the ratio to run 1 is the microservice cost.
Reports throughput, p50/p95/p99 latency, errors by status code, degraded answers by stage,
and, for the gRPC runs, the per-stage breakdown read from the stack's trace files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np

from devstack.stack import Layout, local_specs
from devstack.traces import load_spans, span_files
from services.orchestrator.downstream import DownstreamError
from shared.errors import ServiceError
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    privacy_gateway_pb2,
    ranker_pb2,
    reranker_pb2,
    retrieval_pb2,
)

ROOT = Path(__file__).resolve().parent.parent
# Before the in-process mode's lazy imports load transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

T = TypeVar("T")
STAGES = {v: k.removeprefix("STAGE_").lower() for k, v in common_pb2.Stage.items()}


@dataclass
class RunResult:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    degraded: Counter[str] = field(default_factory=Counter)
    trace_ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def row(self) -> dict[str, Any]:
        done = len(self.latencies_ms)
        pct = (lambda q: float(np.percentile(self.latencies_ms, q))) if done else (lambda q: 0.0)
        return {
            "run": self.name,
            "ok": done,
            "errors": sum(self.errors.values()),
            "rps": done / self.wall_s if self.wall_s else 0.0,
            "p50": pct(50),
            "p95": pct(95),
            "p99": pct(99),
            "degraded": sum(self.degraded.values()),
            "error_codes": dict(self.errors),
            "degraded_stages": dict(self.degraded),
        }


def make_request(rng: random.Random, users: int, k: int) -> orchestrator_pb2.RecommendRequest:
    method = rng.choice([common_pb2.RERANK_METHOD_DPP, common_pb2.RERANK_METHOD_MMR])
    return orchestrator_pb2.RecommendRequest(
        user_ref=f"user-{rng.randrange(users):05d}",
        k=k,
        diversity=orchestrator_pb2.DiversitySettings(method=method, tradeoff=0.5),
    )


Call = Callable[[orchestrator_pb2.RecommendRequest], Awaitable[orchestrator_pb2.RecommendResponse]]


def _record(result: RunResult, resp: orchestrator_pb2.RecommendResponse, ms: float) -> None:
    result.latencies_ms.append(ms)
    for d in resp.degraded_stages:
        result.degraded[STAGES.get(d.stage, "?")] += 1
    if resp.trace_id:
        result.trace_ids.append(resp.trace_id)


async def closed_loop(
    name: str,
    call: Call,
    *,
    requests: int,
    concurrency: int,
    max_s: float,
    seed: int,
    users: int,
    k: int,
) -> RunResult:
    result = RunResult(name)
    rng = random.Random(seed)
    remaining = [requests]
    stop_at = time.perf_counter() + max_s

    async def worker() -> None:
        while remaining[0] > 0 and time.perf_counter() < stop_at:
            remaining[0] -= 1
            req = make_request(rng, users, k)
            t0 = time.perf_counter()
            try:
                resp = await call(req)
            except (grpc.aio.AioRpcError, ServiceError) as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else exc.code
                result.errors[code.name] += 1
                continue
            _record(result, resp, (time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.wall_s = time.perf_counter() - t0
    return result


async def open_loop(
    name: str,
    call: Call,
    *,
    requests: int,
    rate: float,
    max_s: float,
    seed: int,
    users: int,
    k: int,
) -> RunResult:
    result = RunResult(name)
    rng = random.Random(seed)
    start = time.perf_counter()

    async def one(req: orchestrator_pb2.RecommendRequest, scheduled: float) -> None:
        try:
            resp = await call(req)
        except grpc.aio.AioRpcError as exc:
            result.errors[exc.code().name] += 1
            return
        _record(result, resp, (time.perf_counter() - scheduled) * 1000)

    tasks = []
    for i in range(requests):
        scheduled = start + i / rate
        if scheduled - start > max_s:
            break
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(make_request(rng, users, k), scheduled)))
    await asyncio.gather(*tasks)
    result.wall_s = time.perf_counter() - start
    return result


def stage_breakdown(traces_dir: Path, trace_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """p50/p95 duration of every orchestrator stage span and server span, per name."""
    wanted = set(trace_ids)
    durations: dict[str, list[float]] = defaultdict(list)
    for span in load_spans(span_files(traces_dir)):
        if span.trace_id not in wanted:
            continue
        if span.name.startswith("orchestrator.") or span.kind == "server":
            durations[f"{span.service}: {span.name}"].append(span.duration_ms)
    return {
        name: {
            "count": len(v),
            "p50": float(np.percentile(v, 50)),
            "p95": float(np.percentile(v, 95)),
        }
        for name, v in sorted(durations.items())
    }


class _LocalContext:
    """What the servicers read of a grpc.aio.ServicerContext, for direct calls."""

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def auth_context(self) -> Mapping[str, Any]:
        return {}


class InProcessBackends:
    """The orchestrator's Backends protocol over servicer objects: the same validation and
    domain code as the services, without serialization, HTTP/2 or another process."""

    def __init__(self, servicers: Mapping[str, Any]) -> None:
        self._s = servicers

    async def _call(self, service: str, method: str, request: Any, timeout_s: float) -> Any:
        fn = getattr(self._s[service], method)
        try:
            return await asyncio.wait_for(fn(request, _LocalContext(timeout_s)), timeout_s)
        except ServiceError as exc:
            raise DownstreamError(service, exc.code, exc.message) from None
        except TimeoutError:
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            raise DownstreamError(service, code, f"{service} failed: {code.name}") from None

    async def pseudonymize(self, user_refs: Sequence[str], timeout_s: float) -> Any:
        req = privacy_gateway_pb2.PseudonymizeRequest(user_refs=list(user_refs))
        return await self._call("privacy_gateway", "Pseudonymize", req, timeout_s)

    async def sanitize_context(self, context: Mapping[str, str], timeout_s: float) -> Any:
        req = privacy_gateway_pb2.SanitizeContextRequest(context=dict(context))
        return await self._call("privacy_gateway", "SanitizeContext", req, timeout_s)

    async def user_features(self, user_id: str, max_recent_items: int, timeout_s: float) -> Any:
        req = feature_store_pb2.GetUserFeaturesRequest(
            user_id=user_id, max_recent_items=max_recent_items
        )
        return await self._call("feature_store", "GetUserFeatures", req, timeout_s)

    async def item_features(self, item_ids: Sequence[str], timeout_s: float) -> Any:
        req = feature_store_pb2.GetItemFeaturesRequest(item_ids=list(item_ids))
        return await self._call("feature_store", "GetItemFeatures", req, timeout_s)

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> Any:
        req = feature_store_pb2.GetPopularItemsRequest(
            limit=limit, excluded_item_ids=list(excluded_item_ids)
        )
        return await self._call("feature_store", "GetPopularItems", req, timeout_s)

    async def ingest_events(self, events: Sequence[common_pb2.Event], timeout_s: float) -> Any:
        req = feature_store_pb2.IngestEventsRequest(events=list(events))
        return await self._call("feature_store", "IngestEvents", req, timeout_s)

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> Any:
        req = retrieval_pb2.RetrieveCandidatesRequest(
            history=retrieval_pb2.UserHistory(item_ids=list(history)),
            n=n,
            excluded_item_ids=list(excluded_item_ids),
            include_embeddings=True,
        )
        return await self._call("retrieval", "RetrieveCandidates", req, timeout_s)

    async def score(self, request: ranker_pb2.ScoreCandidatesRequest, timeout_s: float) -> Any:
        return await self._call("ranker", "ScoreCandidates", request, timeout_s)

    async def rerank(self, request: reranker_pb2.RerankRequest, timeout_s: float) -> Any:
        return await self._call("reranker", "Rerank", request, timeout_s)


async def build_in_process(layout: Layout) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """The stack's services as objects, configured from the same env the stack uses."""
    from services.feature_store.config import FeatureStoreSettings
    from services.feature_store.servicer import FeatureStoreServicer
    from services.feature_store.store import FeatureStore
    from services.orchestrator.config import OrchestratorSettings
    from services.orchestrator.pipeline import Pipeline
    from services.orchestrator.popularity import PopularityCache
    from services.orchestrator.servicer import RecommendationServicer
    from services.privacy_gateway.app import load_keys
    from services.privacy_gateway.clients import FeatureStoreClient
    from services.privacy_gateway.config import PrivacyGatewaySettings
    from services.privacy_gateway.ledger import Ledger, create_ledger_engine
    from services.privacy_gateway.pii import PiiPolicy, PiiSanitizer
    from services.privacy_gateway.servicer import PrivacyGatewayServicer
    from services.ranker.app import load_ranker
    from services.ranker.config import RankerSettings
    from services.ranker.servicer import RankerServicer
    from services.reranker.config import RerankerSettings
    from services.reranker.servicer import RerankerServicer
    from services.retrieval.config import RetrievalSettings
    from services.retrieval.servicer import RetrievalServicer

    for spec in local_specs(layout):
        os.environ.update(spec.env)
    executor = ThreadPoolExecutor(4, thread_name_prefix="inproc")
    fs_settings = FeatureStoreSettings()  # type: ignore[call-arg]
    store = FeatureStore.from_url(fs_settings.database_url)
    gw_settings = PrivacyGatewaySettings()  # type: ignore[call-arg]
    gw_client = FeatureStoreClient(gw_settings.feature_store_address, max_timeout_s=2.0)
    gateway = PrivacyGatewayServicer(
        gw_settings,
        load_keys(gw_settings),
        PiiSanitizer(PiiPolicy()),
        Ledger(
            create_ledger_engine(gw_settings.database_url),
            epsilon_total=gw_settings.epsilon_budget,
            delta_total=gw_settings.delta_budget,
        ),
        gw_client,
        executor,
    )
    rt_settings = RetrievalSettings()  # type: ignore[call-arg]
    retrieval = RetrievalServicer(rt_settings, executor)
    await retrieval.load(rt_settings.index_version)
    rk_settings = RankerSettings()  # type: ignore[call-arg]
    ranker_core = load_ranker(rk_settings, executor)
    ranker = RankerServicer(
        ranker_core,
        max_candidates=rk_settings.max_candidates,
        default_timeout_s=rk_settings.request_timeout_s,
    )
    servicers = {
        "feature_store": FeatureStoreServicer(
            fs_settings, store.queries, store.ingest, store.admin, executor
        ),
        "privacy_gateway": gateway,
        "retrieval": retrieval,
        "ranker": ranker,
        "reranker": RerankerServicer(RerankerSettings(), executor),  # type: ignore[call-arg]
    }
    backends = InProcessBackends(servicers)
    orch = OrchestratorSettings()  # type: ignore[call-arg]

    async def fetch() -> feature_store_pb2.GetPopularItemsResponse:
        return await backends.popular_items(orch.popularity_size, [], 2.0)  # type: ignore[no-any-return]

    popularity = PopularityCache(fetch, orch.popularity_refresh_s)
    await popularity.refresh()
    pipeline = Pipeline(
        backends,
        popularity,
        candidate_count=orch.candidate_count,
        recent_items=orch.recent_items,
        ranker_weight=orch.ranker_weight,
    )
    servicer = RecommendationServicer(orch, pipeline)

    async def call(req: orchestrator_pb2.RecommendRequest) -> orchestrator_pb2.RecommendResponse:
        return await servicer.Recommend(req, _LocalContext(orch.default_deadline_s))  # type: ignore[arg-type]

    async def close() -> None:
        await ranker_core.backend.close()
        await gw_client.close()
        store.close()
        executor.shutdown(wait=False, cancel_futures=True)

    return call, close


def render(rows: list[dict[str, Any]], stages: Mapping[str, Mapping[str, float]]) -> str:
    lines = [
        "| run | ok | errors | req/s | p50 ms | p95 ms | p99 ms | degraded (by stage) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        deg = ", ".join(f"{k} {v}" for k, v in r["degraded_stages"].items()) or "0"
        err = ", ".join(f"{k} {v}" for k, v in r["error_codes"].items()) or "0"
        lines.append(
            f"| {r['run']} | {r['ok']} | {err} | {r['rps']:.2f} | {r['p50']:.1f} "
            f"| {r['p95']:.1f} | {r['p99']:.1f} | {deg} |"
        )
    if stages:
        lines += [
            "",
            "Per-stage breakdown of the gRPC runs (from the trace files):",
            "",
            "| span (service: name) | count | p50 ms | p95 ms |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {s['count']:.0f} | {s['p50']:.1f} | {s['p95']:.1f} |"
            for name, s in stages.items()
        ]
    return "\n".join(lines)


async def main_async(
    ns: argparse.Namespace,
) -> tuple[str, dict[str, float], list[dict[str, Any]]]:
    layout = Layout(
        root=ROOT,
        var=ns.var,
        base_port=ns.base_port,
        triton_grpc_port=ns.triton_grpc_port,
        ranker_backend=ns.ranker_backend,
        candidate_count=ns.candidates,
        default_deadline_s=ns.deadline_s,
    )
    target = layout.addr("orchestrator")
    common = {
        "requests": ns.requests,
        "max_s": ns.max_seconds,
        "seed": ns.seed,
        "users": ns.users,
        "k": ns.k,
    }
    rows = []
    trace_ids: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)

        async def grpc_call(req: orchestrator_pb2.RecommendRequest) -> Any:
            return await stub.Recommend(req, timeout=ns.deadline_s)

        await grpc_call(make_request(random.Random(0), ns.users, ns.k))  # connect, warm up
        print(f"closed loop over gRPC: {ns.concurrency} workers", flush=True)
        res = await closed_loop("gRPC closed loop", grpc_call, concurrency=ns.concurrency, **common)
        rows.append(res.row())
        trace_ids += res.trace_ids
        print(f"open loop over gRPC: {ns.rate} req/s", flush=True)
        res = await open_loop("gRPC open loop", grpc_call, rate=ns.rate, **common)
        rows.append(res.row())
        trace_ids += res.trace_ids
    print("in-process: building the same services as objects", flush=True)
    call, close = await build_in_process(layout)
    try:
        await call(make_request(random.Random(0), ns.users, ns.k))
        res = await closed_loop(
            "in-process closed loop", call, concurrency=ns.concurrency, **common
        )
        rows.append(res.row())
    finally:
        await close()
    await asyncio.sleep(1.5)  # let the services' batch span exporters flush
    stages = stage_breakdown(layout.traces_dir, trace_ids)
    ratio = {
        "p50_ratio": rows[0]["p50"] / rows[2]["p50"] if rows[2]["p50"] else float("nan"),
        "rps_ratio": rows[2]["rps"] / rows[0]["rps"] if rows[0]["rps"] else float("nan"),
    }
    return render(rows, stages), ratio, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--var", default=str(ROOT / "var" / "stack"), help="the stack's folder")
    p.add_argument("--base-port", type=int, default=50050)
    p.add_argument("--triton-grpc-port", type=int, default=8001)
    p.add_argument("--ranker-backend", choices=["triton", "local"], default="triton")
    p.add_argument("--candidates", type=int, default=50, help="as the stack was started")
    p.add_argument("--deadline-s", type=float, default=5.0)
    p.add_argument("--requests", type=int, default=200, help="per run")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--rate", type=float, default=4.0, help="open-loop arrivals per second")
    p.add_argument("--max-seconds", type=float, default=120.0, help="per run")
    p.add_argument("--users", type=int, default=500, help="synthetic shoppers user-00000..")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="Write the rows as JSON.")
    ns = p.parse_args(argv)
    ns.var = Path(ns.var).resolve()
    if ns.requests < 1 or ns.concurrency < 1 or ns.rate <= 0 or ns.max_seconds <= 0:
        p.error("--requests, --concurrency, --rate and --max-seconds must be positive")
    # The in-process services log each degraded stage; the table counts them instead.
    logging.basicConfig(level=logging.ERROR)
    table, ratio, rows = asyncio.run(main_async(ns))
    summary = (
        f"gRPC/in-process p50 latency ratio {ratio['p50_ratio']:.2f}; "
        f"in-process/gRPC throughput ratio {ratio['rps_ratio']:.2f}"
    )
    print(table)
    print(summary)
    if ns.json:
        ns.json.write_text(json.dumps({"rows": rows, **ratio}, indent=2))
    if ns.record:
        cmd = "python scripts/load_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with ns.record.open("a") as f:
            f.write(
                f"\n### Load: local stack vs in-process ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
                f" {platform.machine()}, {os.cpu_count()} cores, loopback)\n\n"
                f"Command: `{cmd.strip()}` against `python scripts/run_stack.py --no-demo` "
                f"(synthetic default, ranker backend {ns.ranker_backend}, N={ns.candidates}, "
                f"k={ns.k}, DPP/MMR at trade-off 0.5).\n\n{table}\n\n{summary}\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
