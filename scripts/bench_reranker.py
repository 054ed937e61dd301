"""Selection time of the fast greedy DPP (Chen, Zhang and Zhou 2018) against the naive greedy
log-det computation, for N candidates and k picks; MMR is timed alongside for reference.

    OPENBLAS_NUM_THREADS=1 python scripts/bench_reranker.py [--dim 64] [--repeats 30]
    OPENBLAS_NUM_THREADS=1 python scripts/bench_reranker.py --rpc --sizes 100,500 --ks 10,50

Candidates are random Gaussian embeddings with Gaussian relevance (seeded). A timing covers
everything one request pays after parsing: building the kernel (normalising embeddings) and the
selection. The naive method also builds the full N x N kernel, as it must. It runs once per
cell, and only where its cost, extrapolated as c * N * k^3 from the previous cell that ran, fits in
--naive-budget-s; skipped cells are marked. ``agree`` says whether both methods chose the same
list (checked where the naive ran); once k exceeds the embedding rank, only the
prefix before the residuals vanish can agree. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import numpy as np

from services.reranker.dpp import alpha_for, dpp_greedy, greedy_logdet_reference
from services.reranker.kernel import SimilarityKernel, normalise_relevance
from services.reranker.mmr import mmr


def _timings_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and minimum wall time; the minimum shows the cost without interference from
    other processes on a shared machine."""
    fn()  # warm-up: first-call allocations and BLAS initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def _fast(relevance: np.ndarray, embeddings: np.ndarray, k: int, tradeoff: float) -> object:
    return dpp_greedy(relevance, SimilarityKernel(relevance.size, embeddings), k, tradeoff)


def _mmr(relevance: np.ndarray, embeddings: np.ndarray, k: int, tradeoff: float) -> object:
    return mmr(relevance, SimilarityKernel(relevance.size, embeddings), k, tradeoff)


def _naive(relevance: np.ndarray, embeddings: np.ndarray, k: int, tradeoff: float) -> list[int]:
    kernel = SimilarityKernel(relevance.size, embeddings)
    q = np.exp(alpha_for(tradeoff) * normalise_relevance(relevance))
    return greedy_logdet_reference(q[:, None] * kernel.matrix() * q[None, :], k)


def _agreement(fast: list[int], diversified: int, naive: list[int]) -> str:
    if fast == naive:
        return "yes"
    if fast[:diversified] == naive[:diversified]:
        # Past the embedding rank every residual is 0: the fast method fills by relevance,
        # the naive one picks among equal (-inf) log-dets.
        return f"first {diversified} (then residuals vanish)"
    return "no"


async def _rpc_latency(n: int, k: int, dim: int, tradeoff: float, repeats: int, seed: int) -> str:
    """Median round trip of one Rerank call to a real in-process grpc.aio server (parsing,
    validation, selection in the executor, serialisation) over loopback."""
    from concurrent.futures import ThreadPoolExecutor

    from services.reranker.config import RerankerSettings
    from services.reranker.servicer import SERVICE_NAME, RerankerServicer
    from shared.channels import create_channel
    from shared.gen.acme.recsys.v1 import common_pb2, reranker_pb2, reranker_pb2_grpc
    from shared.server import GrpcServer

    rng = np.random.default_rng(seed)
    request = reranker_pb2.RerankRequest(
        candidates=[
            reranker_pb2.RerankCandidate(
                item_id=f"item-{i}", relevance=float(r), embedding=e.tolist(), category=f"c{i % 20}"
            )
            for i, (r, e) in enumerate(
                zip(rng.normal(size=n), rng.normal(size=(n, dim)), strict=True)
            )
        ],
        k=k,
        method=common_pb2.RERANK_METHOD_DPP,
        tradeoff=tradeoff,
    )
    settings = RerankerSettings(port=0)
    executor = ThreadPoolExecutor(settings.executor_workers)
    server = GrpcServer(settings, [SERVICE_NAME])
    reranker_pb2_grpc.add_RerankerServiceServicer_to_server(
        RerankerServicer(settings, executor), server.server
    )
    await server.start()
    try:
        async with create_channel(f"127.0.0.1:{server.port}") as channel:
            stub = reranker_pb2_grpc.RerankerServiceStub(channel)
            await stub.Rerank(request, timeout=10)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                await stub.Rerank(request, timeout=10)
                times.append(time.perf_counter() - start)
    finally:
        await server.stop(0)
        executor.shutdown()
    median, best = 1e3 * statistics.median(times), 1e3 * min(times)
    return f"| {n} | {k} | {dim} | {median:.2f} ({best:.2f}) |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,2000", help="candidate counts N")
    parser.add_argument("--ks", default="10,50,100", help="list lengths k")
    parser.add_argument(
        "--dim", type=int, default=64, help="embedding dimension (retrieval vectors are 64-d)"
    )
    parser.add_argument("--tradeoff", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--naive-budget-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rpc", action="store_true", help="time whole Rerank calls over gRPC instead"
    )
    args = parser.parse_args()
    if args.rpc:
        print("| N | k | dim | Rerank RPC ms (min), DPP, 20 categories |")
        print("|---:|---:|---:|---:|")
        for n in (int(x) for x in args.sizes.split(",")):
            for k in (int(x) for x in args.ks.split(",")):
                if k <= n:
                    line = _rpc_latency(n, k, args.dim, args.tradeoff, args.repeats, args.seed)
                    print(asyncio.run(line), flush=True)
        return

    rng = np.random.default_rng(args.seed)
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
        f"dim={args.dim}, tradeoff={args.tradeoff}, median of {args.repeats}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| N | k | fast DPP ms (min) | MMR ms (min) | naive DPP ms | naive / fast | agree |")
    print("|---:|---:|---:|---:|---:|---:|:---|")
    cost_per_unit: float | None = None
    for n in (int(x) for x in args.sizes.split(",")):
        embeddings = rng.normal(size=(n, args.dim)).astype(np.float32)
        relevance = rng.normal(size=n)
        for k in (int(x) for x in args.ks.split(",")):
            if k > n:
                continue
            case = (relevance, embeddings, k, args.tradeoff)
            fast_ms, fast_min = _timings_ms(partial(_fast, *case), args.repeats)
            mmr_ms, mmr_min = _timings_ms(partial(_mmr, *case), args.repeats)
            times = f"{fast_ms:.2f} ({fast_min:.2f}) | {mmr_ms:.2f} ({mmr_min:.2f})"
            units = n * k**3
            estimate = None if cost_per_unit is None else cost_per_unit * units
            if estimate is not None and estimate > args.naive_budget_s:
                print(
                    f"| {n} | {k} | {times} | skipped (~{estimate:.0f} s est.) | - | - |",
                    flush=True,
                )
                continue
            start = time.perf_counter()
            reference = _naive(relevance, embeddings, k, args.tradeoff)
            naive_s = time.perf_counter() - start
            cost_per_unit = naive_s / units  # the latest, largest cell extrapolates best
            chosen = dpp_greedy(relevance, SimilarityKernel(n, embeddings), k, args.tradeoff)
            agree = _agreement(chosen.indices.tolist(), chosen.diversified, reference)
            print(
                f"| {n} | {k} | {times} | {1e3 * naive_s:.0f} | "
                f"{1e3 * naive_s / fast_ms:.0f}x | {agree} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
