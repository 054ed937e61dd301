"""Benchmark HNSW against exact inner-product search on a large synthetic catalog.

Vectors are clustered like item embeddings (unit vectors around random topic centres), so the
graph index faces realistic neighbourhoods rather than uniform noise. Reports, side by side for
exact search and each HNSW ``ef_search``: recall@N against exact search for N = 10 and 100,
and single-query latency (one query per call, one search thread) at p50/p99.

    python scripts/bench_faiss.py --items 1000000 --dim 64 --queries 1000

Takes minutes on two cores (the HNSW build dominates); results are printed as a Markdown table
and written as JSON under var/bench/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from services.retrieval.index import HnswParams, make_faiss_index


def clustered_unit_vectors(
    n: int, dim: int, centres: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` unit vectors, each a random centre plus isotropic noise, re-normalised."""
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        block = c[rng.integers(centres, size=m)] + noise * rng.standard_normal(
            (m, dim), dtype=np.float32
        )
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + m] = block
    return out


def recall_at(approx: np.ndarray, exact: np.ndarray, n: int) -> float:
    """Mean |approx top-n ∩ exact top-n| / n over queries."""
    hits = [
        len(set(a[:n].tolist()) & set(e[:n].tolist())) for a, e in zip(approx, exact, strict=True)
    ]
    return float(np.mean(hits) / n)


def single_query_latency_ms(index: faiss.Index, queries: np.ndarray, k: int) -> dict[str, float]:
    """Per-call latency of one-query searches, as a service sees it."""
    times = np.empty(len(queries))
    for i in range(len(queries)):
        q = queries[i : i + 1]
        t0 = time.perf_counter()
        index.search(q, k)
        times[i] = (time.perf_counter() - t0) * 1000
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(times.mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--centres", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=100)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--exact-only", action="store_true", help="Measure exact search only (no HNSW build)."
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    base = clustered_unit_vectors(args.items, args.dim, args.centres, args.noise, rng)
    # Queries are perturbed base vectors: they fall in the catalog's clusters, as user vectors
    # do, without being exact copies of an indexed row.
    picks = rng.integers(args.items, size=args.queries)
    queries = base[picks] + args.noise * rng.standard_normal(
        (args.queries, args.dim), dtype=np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(f"data: {args.items} x {args.dim} in {time.perf_counter() - t0:.1f}s", flush=True)

    faiss.omp_set_num_threads(args.build_threads)
    t0 = time.perf_counter()
    flat = make_faiss_index(base, "flat")
    _, exact = flat.search(queries, 100)
    print(f"exact ground truth: {time.perf_counter() - t0:.1f}s", flush=True)

    hnsw, build_s = None, 0.0
    if not args.exact_only:
        t0 = time.perf_counter()
        params = HnswParams(m=args.m, ef_construction=args.ef_construction, ef_search=16)
        hnsw = make_faiss_index(base, "hnsw", params)
        build_s = time.perf_counter() - t0
        print(f"HNSW build (M={args.m}, efC={args.ef_construction}): {build_s:.1f}s", flush=True)

    faiss.omp_set_num_threads(1)
    lat_q = queries[: args.latency_queries]
    rows: list[dict[str, Any]] = [
        {
            "index": "exact (IndexFlatIP)",
            "ef_search": None,
            "recall@10": 1.0,
            "recall@100": 1.0,
            "latency_k10": single_query_latency_ms(flat, lat_q, 10),
            "latency_k100": single_query_latency_ms(flat, lat_q, 100),
        }
    ]
    print(f"exact latency done: {rows[0]['latency_k10']}", flush=True)
    for ef in args.ef_search if hnsw is not None else []:
        hnsw.hnsw.efSearch = ef
        _, approx = hnsw.search(queries, 100)
        row: dict[str, Any] = {
            "index": f"HNSW M={args.m}",
            "ef_search": ef,
            "recall@10": recall_at(hnsw.search(queries, 10)[1], exact, 10),
            "recall@100": recall_at(approx, exact, 100),
            "latency_k10": single_query_latency_ms(hnsw, lat_q, 10),
            "latency_k100": single_query_latency_ms(hnsw, lat_q, 100),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(
        "| index | efSearch | recall@10 | recall@100 | p50 ms (k=10) | p99 ms (k=10) "
        "| p50 ms (k=100) | p99 ms (k=100) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        l10, l100 = r["latency_k10"], r["latency_k100"]
        print(
            f"| {r['index']} | {r['ef_search'] or '-'} | {r['recall@10']:.4f} "
            f"| {r['recall@100']:.4f} | {l10['p50_ms']:.3f} | {l10['p99_ms']:.3f} "
            f"| {l100['p50_ms']:.3f} | {l100['p99_ms']:.3f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    report = {
        "created_at": stamp.isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "faiss": faiss.__version__,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "hnsw_build_s": build_s,
        "rows": rows,
    }
    path = args.out / f"faiss-{stamp:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
