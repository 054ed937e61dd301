"""Load benchmark of the running local stack, side by side with the same services in-process.

Three runs, each bounded in request count AND wall time, on loopback only:

1. closed loop over gRPC: ``concurrency`` workers, each sending the next Recommend when the
   previous answer arrives;
2. open loop over gRPC: arrivals at a fixed ``rate`` (requests/s), latency measured from the
   scheduled send time so a slow server cannot hide queueing (no coordinated omission);
3. closed loop IN-PROCESS: the six services built in this process by their own composition
   roots (``build_<name>(settings)``), with the settings the stack's processes get from
   ``devstack.stack.local_specs`` (same databases, key file, PII policy, index, model, Triton
   server, timeouts and TLS). The orchestrator's ``Backends`` call the other servicers as
   Python objects, converting with the functions its gRPC client uses, so no request crosses
   gRPC; the ratio to run 1 is the microservice cost.

Each in-process app is started with ``start()`` on port 0: that is the one start-up every
app has (retrieval loads its index, the gateway its key ring and ledger, the ranker watches
its backend, the feature store probes its database, the orchestrator fetches its popularity
list), and the run waits until each reports SERVING on its idle port, as the stack launcher
waits for the processes. Measured requests never go through those ports.

Reports throughput, p50/p95/p99 latency, errors by status code, degraded answers by stage,
and, for the gRPC runs, the per-stage breakdown read from the stack's trace files.
``scripts/load_bench.py`` is the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import grpc
import numpy as np
from google.protobuf.message import Message
from pydantic_settings import BaseSettings

from devstack.stack import Layout, ServiceSpec, local_specs, served_cpu_precision
from devstack.traces import load_spans, span_files
from services.feature_store.app import build_feature_store
from services.feature_store.config import FeatureStoreSettings
from services.feature_store.servicer import FeatureStoreServicer
from services.orchestrator.app import build_orchestrator
from services.orchestrator.clients import (
    downstream_error,
    ingest_request_to_proto,
    ingest_result_from_proto,
    item_features_request_to_proto,
    item_lookup_from_proto,
    popular_items_from_proto,
    popular_items_request_to_proto,
    pseudonymize_request_to_proto,
    pseudonyms_from_proto,
    rerank_request_to_proto,
    rerank_result_from_proto,
    retrieval_from_proto,
    retrieve_request_to_proto,
    score_request_to_proto,
    scores_from_proto,
    similar_request_to_proto,
    user_features_from_proto,
    user_features_request_to_proto,
)
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    IngestResult,
    ItemFeatures,
    ItemLookup,
    PopularItems,
    Pseudonyms,
    RerankRequest,
    RerankResult,
    RetrievalResult,
    Scores,
    ShopperContext,
    StoredEvent,
    UserFeatures,
)
from services.orchestrator.servicer import RecommendationServicer
from services.privacy_gateway.app import build_privacy_gateway
from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.servicer import PrivacyGatewayServicer
from services.ranker.app import build_ranker
from services.ranker.config import RankerSettings
from services.ranker.servicer import RankerServicer
from services.reranker.app import build_reranker
from services.reranker.config import RerankerSettings
from services.reranker.servicer import RerankerServicer
from services.retrieval.app import build_retrieval
from services.retrieval.config import RetrievalSettings
from services.retrieval.servicer import RetrievalServicer
from shared.channels import create_channel
from shared.errors import ServiceError
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from shared.health import check_health

__all__ = [
    "GRPC_CLOSED",
    "GRPC_OPEN",
    "IN_PROCESS",
    "InProcessBackends",
    "InProcessServices",
    "LoadConfig",
    "LocalContext",
    "Report",
    "RunResult",
    "closed_loop",
    "in_process_services",
    "make_request",
    "open_loop",
    "record",
    "run",
    "stack_settings",
    "stage_breakdown",
]

log = logging.getLogger(__name__)

GRPC_CLOSED, GRPC_OPEN, IN_PROCESS = "gRPC closed loop", "gRPC open loop", "in-process closed loop"
STAGES = {v: k.removeprefix("STAGE_").lower() for k, v in common_pb2.Stage.items()}
# The services' batch span exporters write every few seconds; the breakdown waits for them.
SPAN_FLUSH_S = 1.5

S = TypeVar("S", bound=BaseSettings)
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


@dataclass(frozen=True)
class LoadConfig:
    """What each run sends: ``requests`` at most and for ``max_s`` at most, to shoppers
    ``user-00000`` .. ``users - 1`` (the synthetic default's references), ``k`` items each,
    DPP or MMR at ``tradeoff``."""

    requests: int = 200
    concurrency: int = 4
    rate: float = 4.0
    max_s: float = 120.0
    users: int = 500
    k: int = 10
    tradeoff: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.requests < 1 or self.concurrency < 1 or self.rate <= 0 or self.max_s <= 0:
            raise ValueError("requests, concurrency, rate and max_s must be positive")
        if self.users < 1 or self.k < 1:
            raise ValueError("users and k must be positive")


@dataclass
class RunResult:
    """Latencies of the answered calls, failed calls by status, degraded answers by stage."""

    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    degraded: Counter[str] = field(default_factory=Counter)
    trace_ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def row(self) -> dict[str, Any]:
        done = len(self.latencies_ms)

        def pct(q: float) -> float:
            return float(np.percentile(self.latencies_ms, q)) if done else 0.0

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


def make_request(rng: random.Random, config: LoadConfig) -> orchestrator_pb2.RecommendRequest:
    method = rng.choice([common_pb2.RERANK_METHOD_DPP, common_pb2.RERANK_METHOD_MMR])
    return orchestrator_pb2.RecommendRequest(
        user_ref=f"user-{rng.randrange(config.users):05d}",
        k=config.k,
        diversity=orchestrator_pb2.DiversitySettings(method=method, tradeoff=config.tradeoff),
    )


Call = Callable[[orchestrator_pb2.RecommendRequest], Awaitable[orchestrator_pb2.RecommendResponse]]


def _status(exc: grpc.aio.AioRpcError | ServiceError) -> str:
    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else exc.code
    return str(code.name)


def _record(result: RunResult, resp: orchestrator_pb2.RecommendResponse, ms: float) -> None:
    result.latencies_ms.append(ms)
    for d in resp.degraded_stages:
        result.degraded[STAGES.get(d.stage, "?")] += 1
    if resp.trace_id:
        result.trace_ids.append(resp.trace_id)


async def closed_loop(name: str, call: Call, config: LoadConfig) -> RunResult:
    """``config.concurrency`` workers, each sending its next request when an answer arrives."""
    result = RunResult(name)
    rng = random.Random(config.seed)
    remaining = [config.requests]
    stop_at = time.perf_counter() + config.max_s

    async def worker() -> None:
        while remaining[0] > 0 and time.perf_counter() < stop_at:
            remaining[0] -= 1
            req = make_request(rng, config)
            t0 = time.perf_counter()
            try:
                resp = await call(req)
            except (grpc.aio.AioRpcError, ServiceError) as exc:
                result.errors[_status(exc)] += 1
                continue
            _record(result, resp, (time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    result.wall_s = time.perf_counter() - t0
    return result


async def open_loop(name: str, call: Call, config: LoadConfig) -> RunResult:
    """Arrivals at ``config.rate`` per second whatever the answers do; latency counts from
    each request's scheduled send time."""
    result = RunResult(name)
    rng = random.Random(config.seed)
    start = time.perf_counter()

    async def one(req: orchestrator_pb2.RecommendRequest, scheduled: float) -> None:
        try:
            resp = await call(req)
        except (grpc.aio.AioRpcError, ServiceError) as exc:
            result.errors[_status(exc)] += 1
            return
        _record(result, resp, (time.perf_counter() - scheduled) * 1000)

    tasks = []
    for i in range(config.requests):
        scheduled = start + i / config.rate
        if scheduled - start > config.max_s:
            break
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(make_request(rng, config), scheduled)))
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


# ---- the in-process services ---------------------------------------------------------------


class LocalContext:
    """What the servicers read of a ``grpc.aio.ServicerContext`` (the caller's remaining time
    and, for privileged calls, its TLS identity: none), for calls without a server."""

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def auth_context(self) -> Mapping[str, Sequence[bytes]]:
        return {}

    def as_servicer_context(self) -> grpc.aio.ServicerContext:
        # The servicers are typed on the full context; they only read the two methods above.
        return cast(grpc.aio.ServicerContext, self)


@dataclass
class HopBytes:
    """Calls and serialized bytes (request + response, as protobuf would put them on the
    wire) of every downstream method, for bytes per hop per Recommend."""

    calls: dict[str, int] = field(default_factory=dict)
    request_bytes: dict[str, int] = field(default_factory=dict)
    response_bytes: dict[str, int] = field(default_factory=dict)

    def add(self, hop: str, request: Message, response: Message) -> None:
        self.calls[hop] = self.calls.get(hop, 0) + 1
        self.request_bytes[hop] = self.request_bytes.get(hop, 0) + request.ByteSize()
        self.response_bytes[hop] = self.response_bytes.get(hop, 0) + response.ByteSize()

    def reset(self) -> None:
        self.calls.clear()
        self.request_bytes.clear()
        self.response_bytes.clear()

    def per_request(self, requests: int) -> dict[str, dict[str, float]]:
        """Calls, request bytes and response bytes of each hop per Recommend."""
        n = max(1, requests)
        return {
            hop: {
                "calls": self.calls[hop] / n,
                "request_bytes": self.request_bytes[hop] / n,
                "response_bytes": self.response_bytes[hop] / n,
            }
            for hop in sorted(self.calls)
        }


class InProcessBackends:
    """The orchestrator's ``Backends`` over the other services' servicer objects.

    Requests and answers go through the same conversions as ``clients.Downstreams``, and a
    failure becomes the same DownstreamError: a ServiceError keeps its code (as the servers'
    error interceptor sends it), a call past its timeout is DEADLINE_EXCEEDED, anything else
    INTERNAL. What is left out is serialization, HTTP/2 and the hop between processes.
    """

    def __init__(
        self,
        *,
        privacy_gateway: PrivacyGatewayServicer,
        feature_store: FeatureStoreServicer,
        retrieval: RetrievalServicer,
        ranker: RankerServicer,
        reranker: RerankerServicer,
    ) -> None:
        self._gateway = privacy_gateway
        self._store = feature_store
        self._retrieval = retrieval
        self._ranker = ranker
        self._reranker = reranker
        self.hops = HopBytes()

    async def _call(
        self,
        service: str,
        method: Callable[[Req, grpc.aio.ServicerContext], Awaitable[Resp]],
        request: Req,
        timeout_s: float,
    ) -> Resp:
        context = LocalContext(timeout_s).as_servicer_context()
        try:
            response = await asyncio.wait_for(method(request, context), timeout_s)
            self.hops.add(f"{service}.{method.__name__}", request, response)
            return response
        except ServiceError as exc:
            raise downstream_error(service, exc.code, exc.message) from None
        except TimeoutError:
            raise downstream_error(service, grpc.StatusCode.DEADLINE_EXCEEDED, None) from None
        except Exception:
            log.exception("in-process call failed", extra={"service": service})
            raise downstream_error(service, grpc.StatusCode.INTERNAL, None) from None

    async def pseudonymize(self, user_refs: Sequence[str], timeout_s: float) -> Pseudonyms:
        response = await self._call(
            "privacy_gateway",
            self._gateway.Pseudonymize,
            pseudonymize_request_to_proto(user_refs),
            timeout_s,
        )
        return pseudonyms_from_proto(response)

    async def user_features(
        self, user_id: str, max_recent_items: int, timeout_s: float
    ) -> UserFeatures:
        response = await self._call(
            "feature_store",
            self._store.GetUserFeatures,
            user_features_request_to_proto(user_id, max_recent_items),
            timeout_s,
        )
        return user_features_from_proto(response)

    async def item_features(self, item_ids: Sequence[str], timeout_s: float) -> ItemLookup:
        response = await self._call(
            "feature_store",
            self._store.GetItemFeatures,
            item_features_request_to_proto(item_ids),
            timeout_s,
        )
        return item_lookup_from_proto(response)

    async def popular_items(
        self, limit: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> PopularItems:
        response = await self._call(
            "feature_store",
            self._store.GetPopularItems,
            popular_items_request_to_proto(limit, excluded_item_ids),
            timeout_s,
        )
        return popular_items_from_proto(response)

    async def ingest_events(self, events: Sequence[StoredEvent], timeout_s: float) -> IngestResult:
        response = await self._call(
            "feature_store", self._store.IngestEvents, ingest_request_to_proto(events), timeout_s
        )
        return ingest_result_from_proto(response)

    async def retrieve(
        self, history: Sequence[str], n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult:
        response = await self._call(
            "retrieval",
            self._retrieval.RetrieveCandidates,
            retrieve_request_to_proto(history, n, excluded_item_ids),
            timeout_s,
        )
        return retrieval_from_proto(response)

    async def similar_items(
        self, item_id: str, n: int, excluded_item_ids: Sequence[str], timeout_s: float
    ) -> RetrievalResult:
        response = await self._call(
            "retrieval",
            self._retrieval.GetSimilarItems,
            similar_request_to_proto(item_id, n, excluded_item_ids),
            timeout_s,
        )
        return retrieval_from_proto(response)

    async def score(
        self, context: ShopperContext, items: Sequence[ItemFeatures], timeout_s: float
    ) -> Scores:
        response = await self._call(
            "ranker",
            self._ranker.ScoreCandidates,
            score_request_to_proto(context, items),
            timeout_s,
        )
        return scores_from_proto(response)

    async def rerank(self, request: RerankRequest, timeout_s: float) -> RerankResult:
        response = await self._call(
            "reranker", self._reranker.Rerank, rerank_request_to_proto(request), timeout_s
        )
        return rerank_result_from_proto(response)


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def stack_settings(settings_type: type[S], spec: ServiceSpec, **overrides: Any) -> S:
    """``settings_type`` as the stack's child ``spec`` reads it (this process's environment
    with the spec's variables on top, as the launcher starts it), then ``overrides``."""
    # Constructed from the environment itself, not from parsed keyword arguments, so every
    # field is decoded exactly as the child process decodes it.
    with _environment(spec.env):
        return settings_type(**overrides)


class _App(Protocol):
    @property
    def port(self) -> int: ...

    async def start(self) -> int: ...

    async def stop(self, grace: float | None = None) -> None: ...


@dataclass
class InProcessServices:
    """The six services built in this process; ``recommend`` calls the orchestrator's
    servicer with the deadline the stack's orchestrator applies to a call without one."""

    orchestrator: RecommendationServicer
    deadline_s: float
    hops: HopBytes = field(default_factory=HopBytes)

    async def recommend(
        self, request: orchestrator_pb2.RecommendRequest
    ) -> orchestrator_pb2.RecommendResponse:
        context = LocalContext(self.deadline_s).as_servicer_context()
        return await self.orchestrator.Recommend(request, context)


async def _wait_serving(name: str, target: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while (status := await check_health(target, "", 1.0)) != "SERVING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"in-process {name} not ready ({status}) in {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def in_process_services(layout: Layout) -> AsyncIterator[InProcessServices]:
    """Build and start the six services of ``layout``'s stack in this event loop; stop them
    all (the orchestrator first) on exit, also when one of them failed to build or start."""
    specs = {spec.name: spec for spec in local_specs(layout)}
    async with contextlib.AsyncExitStack() as started:

        async def start(name: str, app: _App) -> None:
            await app.start()
            started.push_async_callback(app.stop, 0)
            await _wait_serving(name, f"{layout.host}:{app.port}", specs[name].startup_timeout_s)

        # Port 0 everywhere: the stack's processes hold the configured ports.
        store = build_feature_store(
            stack_settings(FeatureStoreSettings, specs["feature_store"], port=0)
        )
        await start("feature_store", store)
        # The gateway's store client (only its DP release uses it) talks to this store.
        gateway = build_privacy_gateway(
            stack_settings(
                PrivacyGatewaySettings,
                specs["privacy_gateway"],
                port=0,
                feature_store_address=f"{layout.host}:{store.port}",
            )
        )
        await start("privacy_gateway", gateway)
        retrieval = build_retrieval(stack_settings(RetrievalSettings, specs["retrieval"], port=0))
        await start("retrieval", retrieval)
        ranker = build_ranker(stack_settings(RankerSettings, specs["ranker"], port=0))
        await start("ranker", ranker)
        reranker = build_reranker(stack_settings(RerankerSettings, specs["reranker"], port=0))
        await start("reranker", reranker)
        backends = InProcessBackends(
            privacy_gateway=gateway.servicer,
            feature_store=store.servicer,
            retrieval=retrieval.servicer,
            ranker=ranker.servicer,
            reranker=reranker.servicer,
        )
        settings = stack_settings(OrchestratorSettings, specs["orchestrator"], port=0)
        orchestrator = build_orchestrator(settings, backends=backends)
        await start("orchestrator", orchestrator)
        yield InProcessServices(orchestrator.servicer, settings.default_deadline_s, backends.hops)


# ---- the three runs and their report ---------------------------------------------------------


@dataclass
class Report:
    """The rows of the three runs and the gRPC runs' per-stage breakdown."""

    rows: list[dict[str, Any]]
    stages: dict[str, dict[str, float]]
    hops: dict[str, dict[str, float]] = field(default_factory=dict)
    in_process_cpu_ms: float = float("nan")
    # CPU ms per answered Recommend of each stack process across the gRPC closed loop.
    grpc_cpu_ms: dict[str, float] = field(default_factory=dict)

    def _row(self, name: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["run"] == name)

    @property
    def p50_ratio(self) -> float:
        """gRPC closed-loop p50 over in-process p50: above 1 is what gRPC costs."""
        if not any(r["run"] == GRPC_CLOSED for r in self.rows):
            return float("nan")
        inproc = self._row(IN_PROCESS)["p50"]
        return float(self._row(GRPC_CLOSED)["p50"] / inproc) if inproc else float("nan")

    @property
    def rps_ratio(self) -> float:
        """In-process closed-loop throughput over the gRPC one."""
        if not any(r["run"] == GRPC_CLOSED for r in self.rows):
            return float("nan")
        grpc_rps = self._row(GRPC_CLOSED)["rps"]
        return float(self._row(IN_PROCESS)["rps"] / grpc_rps) if grpc_rps else float("nan")

    def summary(self) -> str:
        if not any(r["run"] == GRPC_CLOSED for r in self.rows):
            return "in-process run only: no gRPC/in-process ratios"
        return (
            f"gRPC/in-process p50 latency ratio {self.p50_ratio:.2f}; "
            f"in-process/gRPC throughput ratio {self.rps_ratio:.2f}"
        )

    def table(self) -> str:
        lines = [
            "| run | ok | errors | req/s | p50 ms | p95 ms | p99 ms | degraded (by stage) |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.rows:
            deg = ", ".join(f"{k} {v}" for k, v in r["degraded_stages"].items()) or "0"
            err = ", ".join(f"{k} {v}" for k, v in r["error_codes"].items()) or "0"
            lines.append(
                f"| {r['run']} | {r['ok']} | {err} | {r['rps']:.2f} | {r['p50']:.1f} "
                f"| {r['p95']:.1f} | {r['p99']:.1f} | {deg} |"
            )
        if self.grpc_cpu_ms:
            by_process = ", ".join(f"{k} {v:.2f}" for k, v in self.grpc_cpu_ms.items())
            lines += [
                "",
                f"gRPC closed loop: CPU ms per Recommend by stack process (/proc): {by_process}; "
                f"total {sum(self.grpc_cpu_ms.values()):.2f}",
            ]
        if self.hops:
            lines += [
                "",
                f"In-process run: {self.in_process_cpu_ms:.2f} ms process CPU per Recommend; "
                "bytes per hop per Recommend (protobuf ByteSize):",
                "",
                "| hop | calls | request bytes | response bytes |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {hop} | {h['calls']:.2f} | {h['request_bytes']:.0f} "
                f"| {h['response_bytes']:.0f} |"
                for hop, h in self.hops.items()
            ]
        if self.stages:
            lines += [
                "",
                "Per-stage breakdown of the gRPC runs (from the trace files):",
                "",
                "| span (service: name) | count | p50 ms | p95 ms |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {name} | {s['count']:.0f} | {s['p50']:.1f} | {s['p95']:.1f} |"
                for name, s in self.stages.items()
            ]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "p50_ratio": self.p50_ratio,
            "rps_ratio": self.rps_ratio,
            "in_process_cpu_ms": self.in_process_cpu_ms,
            "grpc_cpu_ms": self.grpc_cpu_ms,
        }


async def run(
    layout: Layout,
    config: LoadConfig,
    *,
    progress: Callable[[str], None] = print,
    over_grpc: bool = True,
) -> Report:
    """The three runs against the stack running on ``layout`` and its in-process twin (only
    the in-process one without ``over_grpc``: no stack needed, e.g. under a profiler);
    RuntimeError when the stack does not answer or an in-process service does not get ready."""
    rows: list[dict[str, Any]] = []
    trace_ids: list[str] = []
    grpc_cpu: dict[str, float] = {}
    if over_grpc:
        rows, trace_ids, grpc_cpu = await _grpc_runs(layout, config, progress)
    progress("in-process: the same services built through their composition roots")
    async with in_process_services(layout) as services:
        await services.recommend(make_request(random.Random(config.seed), config))
        services.hops.reset()
        cpu = time.process_time()
        inproc = await closed_loop(IN_PROCESS, services.recommend, config)
        cpu = time.process_time() - cpu
        rows.append(inproc.row())
        requests = inproc.row()["ok"]
        hops = services.hops.per_request(requests)
    if over_grpc:
        await asyncio.sleep(SPAN_FLUSH_S)
    return Report(
        rows,
        stage_breakdown(layout.traces_dir, trace_ids) if over_grpc else {},
        hops,
        1000 * cpu / max(1, requests),
        grpc_cpu,
    )


STACK_SERVICES = (
    "privacy_gateway",
    "feature_store",
    "retrieval",
    "ranker",
    "reranker",
    "orchestrator",
)


def stack_pids(layout: Layout, proc: Path = Path("/proc")) -> dict[str, int]:
    """The running stack's service processes on ``layout``'s ports: each runs
    ``-m services.<name>`` with ``RECSYS_<NAME>_PORT=<its port>`` in its environment. Read
    from Linux's /proc (empty where there is none, or for processes of another user)."""
    if not proc.is_dir():
        return {}
    wanted = {
        name: f"RECSYS_{name.upper()}_PORT={layout.ports[name]}".encode() for name in STACK_SERVICES
    }
    found: dict[str, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            module = argv[argv.index(b"-m") + 1].decode()
            name = module.removeprefix("services.")
            if name not in wanted:
                continue
            if wanted[name] in (entry / "environ").read_bytes().split(b"\0"):
                found[name] = int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    return found


def process_cpu_s(pid: int, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of ``pid`` so far (/proc/<pid>/stat)."""
    fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _grpc_runs(
    layout: Layout, config: LoadConfig, progress: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[str], dict[str, float]]:
    rows = []
    trace_ids: list[str] = []
    cpu_ms: dict[str, float] = {}
    # No retries: a refused call is a result of the benchmark, not something to hide.
    async with create_channel(layout.addr("orchestrator"), max_attempts=1) as channel:
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)

        async def grpc_call(
            req: orchestrator_pb2.RecommendRequest,
        ) -> orchestrator_pb2.RecommendResponse:
            response: orchestrator_pb2.RecommendResponse = await stub.Recommend(
                req, timeout=layout.default_deadline_s
            )
            return response

        try:
            await grpc_call(make_request(random.Random(config.seed), config))  # connect, warm up
        except grpc.aio.AioRpcError as exc:
            raise RuntimeError(
                f"no stack answers at {layout.addr('orchestrator')} ({exc.code().name}); "
                "start it with python scripts/run_stack.py --no-demo"
            ) from None
        progress(f"closed loop over gRPC: {config.concurrency} workers")
        pids = stack_pids(layout)
        before = {name: process_cpu_s(pid) for name, pid in pids.items()}
        closed = await closed_loop(GRPC_CLOSED, grpc_call, config)
        answered = max(1, len(closed.latencies_ms))
        for name, pid in pids.items():
            with contextlib.suppress(OSError):  # a process that exited has no figure
                cpu_ms[name] = 1000 * (process_cpu_s(pid) - before[name]) / answered
        progress(f"open loop over gRPC: {config.rate} req/s")
        opened = await open_loop(GRPC_OPEN, grpc_call, config)
        for result in (closed, opened):
            rows.append(result.row())
            trace_ids += result.trace_ids
    return rows, trace_ids, cpu_ms


def record(path: Path, report: Report, *, command: str, layout: Layout, config: LoadConfig) -> None:
    """Append ``report`` to ``path`` under a dated heading naming the command and the stack."""
    backend = f"ranker backend {layout.ranker_backend}"
    if layout.ranker_backend == "triton":
        # What the stack's Triton CPU model runs, read from its repository, not assumed.
        served = served_cpu_precision(layout.ranker_dir) or "not recorded"
        backend += f", Triton CPU precision {served}"
    with path.open("a") as f:
        f.write(
            f"\n### Load: local stack vs in-process ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC,"
            f" {platform.machine()}, {os.cpu_count()} cores, loopback)\n\n"
            f"Command: `{command}` against `python scripts/run_stack.py --no-demo` "
            f"(synthetic default, {backend}, "
            f"N={layout.candidate_count}, k={config.k}, DPP/MMR at trade-off "
            f"{config.tradeoff}).\n\n{report.table()}\n\n{report.summary()}\n"
        )
