"""Latency of the live catalog's RPCs on a real retrieval server (loopback gRPC, real FAISS).

A flat version of ``--items`` random unit vectors (with a random title tower) is published to
a temporary folder and served; then, for each number of items already added (``--live``), the
script times one-item UpsertItems, RemoveItems and GetSimilarItems(n=100) calls.

    python scripts/bench_live_catalog.py --items 50000 --dim 64 --calls 30

Prints one Markdown row per ``--live`` value.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from services.retrieval.app import build_retrieval
from services.retrieval.config import RetrievalSettings
from shared.artefacts.retrieval import RetrievalArtefact, normalise, save_artefact
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import retrieval_pb2 as pb
from shared.gen.acme.recsys.v1 import retrieval_pb2_grpc
from shared.minilm import HIDDEN_SIZE


def _artefact(n: int, dim: int, rng: np.random.Generator) -> RetrievalArtefact:
    return RetrievalArtefact(
        item_ids=[f"i{k:07d}" for k in range(n)],
        item_vectors=normalise(rng.standard_normal((n, dim)).astype(np.float32)),
        user_weight=np.eye(dim, dtype=np.float32),
        user_bias=np.zeros(dim, dtype=np.float32),
        recency_decay=0.8,
        max_history=10,
        popularity=np.zeros(n, dtype=np.int64),
        meta={"dataset": "bench", "seed": 0, "created_at": "2026-01-01T00:00:00+00:00"},
        text_weight=rng.standard_normal((dim, HIDDEN_SIZE)).astype(np.float32),
        text_bias=np.zeros(dim, dtype=np.float32),
    )


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(0.95 * len(ordered)) - 1)]
    return f"{statistics.median(ordered) * 1e3:.2f} / {p95 * 1e3:.2f} ms"


async def _run(args: argparse.Namespace, root: Path) -> None:
    rng = np.random.default_rng(0)
    save_artefact(_artefact(args.items, args.dim, rng), root, "bench")
    settings = RetrievalSettings(
        port=0, artefact_root=str(root), executor_workers=2, max_live_items=max(args.live) * 2
    )  # type: ignore[call-arg]
    print(
        "| added items (at the end) | UpsertItems p50 / p95 | RemoveItems p50 / p95 | "
        "GetSimilarItems n=100 p50 / p95 |"
    )
    print("|---|---|---|---|")
    added = 0
    async with (
        build_retrieval(settings) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        for live in args.live:
            while added < live:
                step = min(500, live - added)
                titles = normalise(rng.standard_normal((step, HIDDEN_SIZE)).astype(np.float32))
                items = [
                    pb.LiveItem(item_id=f"L{added + j}", title_embedding=t)
                    for j, t in enumerate(titles)
                ]
                await stub.UpsertItems(pb.UpsertItemsRequest(items=items), timeout=120)
                added += step
            ups: list[float] = []
            removes: list[float] = []
            similar: list[float] = []
            for r in range(args.calls):
                item = f"X{live}-{r}"
                title = normalise(rng.standard_normal(HIDDEN_SIZE).astype(np.float32))
                start = time.perf_counter()
                await stub.UpsertItems(
                    pb.UpsertItemsRequest(items=[pb.LiveItem(item_id=item, title_embedding=title)])
                )
                ups.append(time.perf_counter() - start)
                start = time.perf_counter()
                await stub.GetSimilarItems(
                    pb.GetSimilarItemsRequest(item_id=item, n=100, include_embeddings=True)
                )
                similar.append(time.perf_counter() - start)
                start = time.perf_counter()
                await stub.RemoveItems(pb.RemoveItemsRequest(item_ids=[f"i{r:07d}"]))
                removes.append(time.perf_counter() - start)
            info = await stub.GetIndexInfo(pb.GetIndexInfoRequest())
            print(
                f"| {info.live_item_count:,} | {_ms(ups)} | {_ms(removes)} | {_ms(similar)} |",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--live", type=int, nargs="+", default=[0, 1000, 10000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_run(args, Path(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
