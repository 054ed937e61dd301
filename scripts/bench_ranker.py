"""Throughput (pairs/s) and latency (p50/p95) of the ranker model at several batch sizes, for
(a) the local torch backend and (b) the Triton gRPC path (bundled Triton, python backend
running the exported ONNX graph with onnxruntime; on --device cuda its instances sit on the
GPU and use onnxruntime's CUDA provider when onnxruntime-gpu is installed).

Self-contained for a GPU box: needs torch, transformers, numpy, onnx, onnxruntime(-gpu),
tritonclient[grpc] and nvidia-pytriton only (no SQLAlchemy, FAISS or OpenTelemetry).

    python scripts/bench_ranker.py --device cpu --iters 3 --batch-sizes 32 64 128
    python scripts/bench_ranker.py --device cuda --random-weights      # lead, on the GPU box
    python scripts/bench_ranker.py --random-weights --skip-local --precisions fp32 int8 bf16 \
        --batch-sizes 50 --seq-len 48 --threads 2        # the CPU precisions, ratio to fp32
    python scripts/bench_ranker.py --model-dir var/models/ranker --skip-local \
        --precisions fp32 int8 bf16 openvino_bf16 openvino_int8 --batch-sizes 50 \
        --seq-len 64 48 --threads 2     # + agreement on real lists; 64 = the old served length

With --precisions each CPU precision the export can choose (offline/ranker/cpu_precision.py)
is one model (``ranker_bert_<precision>``) of ONE Triton server, the precisions take turns
call by call, and a column gives each row's pairs/s over fp32's: on a CPU shared with other
jobs the load then falls on every precision alike, so the ratios hold where absolute figures
do not. With a trained artefact (not --random-weights) the same server then scores the
export's evaluation lists (real shoppers, Online Retail where present) through every
precision and prints their agreement with fp32, so speed and ranking come from one run.

Inputs are random token ids of a fixed length (--seq-len), which costs the same as real text
of that length. --random-weights builds the all-MiniLM-L6-v2 architecture with random weights
(the same compute as the real model) so the 90 MB weights need not travel; otherwise the
model comes from --model-dir (an artefact or the LATEST under var/models/ranker).
The table is printed and appended to docs/ranker.md with the device name, date and command.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The CPU precisions the export chooses from (offline/ranker/cpu_precision.py).
PRECISIONS = ["fp32", "int8", "bf16", "openvino_fp32", "openvino_bf16", "openvino_int8"]

Arrays = dict[str, np.ndarray]
Scorer = Callable[[Arrays], Any]

# all-MiniLM-L6-v2's architecture, for --random-weights.
MINILM_CONFIG: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}


def _model(args: argparse.Namespace) -> tuple[Any, str, Any]:
    """(model, its description, the artefact or None for --random-weights)."""
    import torch
    from transformers import BertConfig, BertModel

    from services.ranker.model import CrossEncoder, load_artefact

    if args.random_weights:
        torch.manual_seed(0)
        model = CrossEncoder(BertModel(BertConfig(**MINILM_CONFIG), add_pooling_layer=False))
        return model.eval(), "random weights (all-MiniLM-L6-v2 architecture)", None
    artefact = load_artefact(args.model_dir)
    return artefact.model, f"artefact {artefact.version}", artefact


def _inputs(batch: int, seq_len: int, rng: np.random.Generator) -> Arrays:
    return {
        "input_ids": rng.integers(1000, 30000, size=(batch, seq_len)).astype(np.int64),
        "attention_mask": np.ones((batch, seq_len), dtype=np.int64),
        "token_type_ids": (np.arange(seq_len)[None, :] >= seq_len // 2)
        .repeat(batch, 0)
        .astype(np.int64),
    }


def _measure(fn: Scorer, batches: list[Arrays], warmup: int) -> dict[str, float]:
    for arrays in batches[:warmup]:
        fn(arrays)
    times = []
    for arrays in batches[warmup:]:
        start = time.perf_counter()
        fn(arrays)
        times.append(time.perf_counter() - start)
    return _summary(batches, times, sum(times))


def _summary(batches: list[Arrays], times: list[float], busy_s: float) -> dict[str, float]:
    """pairs/s over ``busy_s`` seconds, and per-call latency percentiles of ``times``."""
    size = batches[0]["input_ids"].shape[0]
    return {
        "pairs_s": size * len(times) / busy_s,
        "p50_ms": float(np.percentile(times, 50) * 1000),
        "p95_ms": float(np.percentile(times, 95) * 1000),
    }


def _torch_fn(model: Any, device: str, fp16: bool) -> Scorer:
    import torch

    net = model.to(device)
    if fp16:
        net = net.half()

    def run(arrays: Arrays) -> Any:
        with torch.inference_mode():
            out = net(**{k: torch.from_numpy(v).to(device) for k, v in arrays.items()})
            return out.float().cpu().numpy()  # the copy back waits for the GPU

    return run


def _measure_clients(
    make_fn: Callable[[], Scorer], batches: list[Arrays], warmup: int, clients: int
) -> dict[str, float]:
    """``clients`` threads, each with its own connection, send the timed batches at once:
    aggregate pairs/s over the wall time, and per-call latency percentiles."""
    if clients == 1:
        return _measure(make_fn(), batches, warmup)
    fns = [make_fn() for _ in range(clients)]
    for fn in fns:
        for arrays in batches[:warmup]:
            fn(arrays)
    barrier = threading.Barrier(clients + 1)
    times: list[float] = []
    lock = threading.Lock()

    def client(fn: Scorer) -> None:
        barrier.wait()
        mine = []
        for arrays in batches[warmup:]:
            start = time.perf_counter()
            fn(arrays)
            mine.append(time.perf_counter() - start)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return _summary(batches, times, time.perf_counter() - start)


def _triton_fn(url: str, model_name: str) -> Scorer:
    from tritonclient.grpc import InferenceServerClient, InferInput, InferRequestedOutput

    client = InferenceServerClient(url)

    def run(arrays: Arrays) -> Any:
        inputs = []
        for name, value in arrays.items():
            tensor = InferInput(name, list(value.shape), "INT64")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        result = client.infer(model_name, inputs, outputs=[InferRequestedOutput("logits")])
        return result.as_numpy("logits")

    return run


def _real_lists(artefact: Any, args: argparse.Namespace) -> tuple[Any, list[Any], list[Arrays]]:
    """The export's evaluation lists (real shoppers' candidates, later purchases marked) and
    calibration lists (other, training-period shoppers) of a trained artefact, at its
    trained pair length; ``(None, [], [])`` where no dataset can be loaded."""
    from offline.ranker import cpu_precision as cp

    try:
        data = cp.default_evaluation_dataset()
    except (OSError, ValueError) as exc:
        print(f"no evaluation data ({exc}); agreement not measured", file=sys.stderr)
        return None, [], []
    groups = cp.evaluation_groups(
        data, artefact.tokenizer, shoppers=args.eval_shoppers, max_length=artefact.max_length
    )
    calibration = cp.calibration_groups(
        data,
        artefact.tokenizer,
        shoppers=args.eval_shoppers,
        max_length=artefact.max_length,
        exclude=[g.user for g in groups],
    )
    return data, groups, calibration


def _precision_rows(
    args: argparse.Namespace, model: Any, artefact: Any, plan: dict[tuple[int, int], list[Arrays]]
) -> tuple[list[tuple[str, int, int, dict[str, float]]], list[str]]:
    """One Triton server with a model per precision; per batch size and pair length the
    precisions take turns call by call, each timed as a client sees it. With a trained
    artefact the same server then scores the export's evaluation lists, and each precision's
    agreement with fp32 is reported (the export's criteria), and so is that of fp32 at each
    other --seq-len against fp32 at the trained length."""
    from devstack.triton_server import TritonProcess, free_port
    from offline.ranker import cpu_precision as cp
    from offline.ranker.export import export_onnx, write_model_repository

    rows = []
    data, groups, calibration = _real_lists(artefact, args) if artefact else (None, [], [])
    if not calibration:  # random weights: ranges from random tokens, for timing only
        calibration = [batch for batches in plan.values() for batch in batches[:2]]
    agreement: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model.to("cpu").float(), Path(tmp) / "model.onnx")
        for precision in args.precisions:
            write_model_repository(
                onnx_path,
                Path(tmp) / "repo",
                f"ranker_bert_{precision}",
                "cpu",
                precision=precision,
                model=model,
                calibration=calibration,
                max_batch_size=max(b for b, _ in plan),
            )
        server = TritonProcess(
            Path(tmp) / "repo",
            grpc_port=free_port(),
            http_port=free_port(),
            metrics_port=free_port(),
            log_file=Path(tmp) / "triton.log",
        ).start()
        try:
            server.wait_ready(300)
            fns = {p: _triton_fn(server.grpc_url, f"ranker_bert_{p}") for p in args.precisions}
            for (b, length), batches in plan.items():
                times: dict[str, list[float]] = {p: [] for p in fns}
                for i, arrays in enumerate(batches):
                    for precision, fn in fns.items():
                        start = time.perf_counter()
                        fn(arrays)
                        if i >= args.warmup:
                            times[precision].append(time.perf_counter() - start)
                for precision in fns:
                    timed = batches[args.warmup :]
                    summary = _summary(timed, times[precision], sum(times[precision]))
                    rows.append((f"Triton gRPC (cpu {precision})", b, length, summary))
                    print(rows[-1], flush=True)
            if groups and "fp32" in fns:
                scored = {
                    p: [np.asarray(fn(g.arrays)).reshape(-1) for g in groups]
                    for p, fn in fns.items()
                }
                lengths = sorted({length for _, length in plan} - {artefact.max_length})
                for length in lengths:
                    longer = cp.evaluation_groups(
                        data, artefact.tokenizer, shoppers=args.eval_shoppers, max_length=length
                    )
                    scored[f"fp32, {length} tokens"] = [
                        np.asarray(fns["fp32"](g.arrays)).reshape(-1) for g in longer
                    ]
                rows.extend(_service_rows(args, artefact, data, server.grpc_url, sorted(lengths)))
                for name, scores in scored.items():
                    a = cp.agreement(scored["fp32"], scores, groups)
                    label = name if "tokens" in name else f"{name}, {artefact.max_length} tokens"
                    agreement.append(
                        f"| {label} | {a['spearman_mean']:.4f} | {a['spearman_min']:.4f} "
                        f"| {a['ndcg10']:.4f} | {0.0 - a['ndcg10_relative_drop']:+.1%} "
                        f"| {'yes' if a['agrees'] else 'no'} |"
                    )
        finally:
            server.stop()
    return rows, agreement


def _real_requests(data: Any, shoppers: int, candidates: int = 50) -> list[Any]:
    """ScoreCandidates requests as the orchestrator sends them, for a seeded sample of
    shoppers: their newest titles and top categories, and the co-occurrence candidates of
    their training-period history."""
    import random

    from offline.ranker.candidates import CooccurrenceCandidates, baskets
    from offline.ranker.training import _newest_first, _top_categories
    from shared.data.types import temporal_split
    from shared.gen.acme.recsys.v1 import ranker_pb2

    train, _ = temporal_split(data)
    source = CooccurrenceCandidates(train)
    history = {u: _newest_first([i for b in g for i in b]) for u, g in baskets(train).items()}
    users = sorted(history)
    random.Random(2).shuffle(users)
    out = []
    for user in users:
        cands = [c for c in source.candidates(history[user], candidates) if c in data.items]
        if len(cands) < candidates:
            continue
        known = [data.items[i] for i in history[user] if i in data.items]
        out.append(
            ranker_pb2.ScoreCandidatesRequest(
                context=ranker_pb2.ShopperContext(
                    recent_item_titles=[it.title for it in known[:8]],
                    recent_categories=[c for c, _ in _top_categories(known)][:4],
                ),
                candidates=[
                    ranker_pb2.CandidateItem(
                        item_id=c,
                        title=data.items[c].title,
                        category_path=list(data.items[c].category_path),
                        price=data.items[c].price or 0.0,
                    )
                    for c in cands
                ],
                ranking_model="none",
            )
        )
        if len(out) == shoppers:
            break
    return out


def _service_rows(
    args: argparse.Namespace, artefact: Any, data: Any, url: str, lengths: list[int]
) -> list[tuple[str, int, int, dict[str, float]]]:
    """p50/p95 of a whole ScoreCandidates (tokenisation, the ranker's gRPC server, its
    Triton call) per precision, at the pair length the ranker serves (the artefact's) and,
    for fp32, at every other --seq-len, e.g. the 64-token cap served before that."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from services.ranker.app import build_ranker, load_ranker
    from services.ranker.config import RankerSettings
    from shared.channels import create_channel
    from shared.gen.acme.recsys.v1 import ranker_pb2_grpc

    requests = _real_requests(data, args.eval_shoppers)
    variants = [(p, artefact.max_length) for p in args.precisions]
    variants += [("fp32", n) for n in lengths if n != artefact.max_length]

    async def run() -> list[tuple[str, int, int, dict[str, float]]]:
        executor = ThreadPoolExecutor(4)
        apps, stubs, rankers, channels = [], {}, [], []
        try:
            for precision, length in variants:
                settings = RankerSettings(
                    port=0,
                    backend="triton",
                    triton_url=url,
                    model_name=f"ranker_bert_{precision}",
                    model_dir=str(artefact.path),
                    ranking_model_dir=str(artefact.path / "_no_ranking_model"),
                    request_timeout_s=30.0,
                    max_candidates=max(len(r.candidates) for r in requests),
                )
                ranker = load_ranker(settings, executor)
                ranker.max_text_tokens = length  # the pair length this row measures
                rankers.append(ranker)
                app = build_ranker(settings, ranker=ranker)
                await app.__aenter__()
                apps.append(app)
                channel = create_channel(f"127.0.0.1:{app.port}", max_attempts=1)
                channels.append(channel)
                stubs[(precision, length)] = ranker_pb2_grpc.RankerServiceStub(channel)
            times: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
            rounds = args.warmup + args.iters
            for i in range(rounds):
                request = requests[i % len(requests)]
                for variant in variants:
                    start = time.perf_counter()
                    await stubs[variant].ScoreCandidates(request, timeout=60)
                    if i >= args.warmup:
                        times[variant].append(time.perf_counter() - start)
        finally:
            for channel in channels:
                await channel.close()
            for app in apps:
                await app.__aexit__(None, None, None)
            for ranker in rankers:
                await ranker.backend.close()
            executor.shutdown()
        size = len(requests[0].candidates)
        return [
            (
                f"ScoreCandidates via Triton (cpu {precision})",
                size,
                length,
                {
                    "pairs_s": size * len(t) / sum(t),
                    "p50_ms": float(np.percentile(t, 50) * 1000),
                    "p95_ms": float(np.percentile(t, 95) * 1000),
                },
            )
            for (precision, length), t in times.items()
        ]

    return asyncio.run(run())


def _ratios_to_fp32(
    rows: list[tuple[str, int, int, dict[str, float]]], base_length: int
) -> dict[tuple[str, int, int], tuple[str, str]]:
    """pairs/s of each ``cpu <precision>`` Triton row over the ``cpu fp32`` row of the same
    batch size, batching mode and pair length, and over the fp32 row at ``base_length``."""
    fp32 = {
        (path.replace("cpu fp32", "cpu"), b, length): m["pairs_s"]
        for path, b, length, m in rows
        if "cpu fp32" in path
    }
    out = {}
    for path, b, length, m in rows:
        precision = path.split("cpu ", 1)[1].rstrip(")") if "cpu " in path else None
        generic = path.replace(f"cpu {precision}", "cpu") if precision else path
        same = fp32.get((generic, b, length))
        base = fp32.get((generic, b, base_length))
        if same:
            out[(path, b, length)] = (
                f"{m['pairs_s'] / same:.2f}x",
                f"{m['pairs_s'] / base:.2f}x" if base else "",
            )
    return out


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu}), no GPU"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    p.add_argument(
        "--seq-len",
        type=int,
        nargs="+",
        default=[64],
        help="Pair lengths in tokens; with several, the ratio column also compares each row "
        "with fp32 at the first one.",
    )
    p.add_argument("--iters", type=int, default=10, help="Timed calls per batch size.")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--model-dir", default="var/models/ranker")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--fp16", action="store_true", help="Local backend in half precision (cuda).")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch, onnxruntime).")
    p.add_argument("--skip-triton", action="store_true")
    p.add_argument("--skip-local", action="store_true", help="No local torch rows.")
    p.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        help="Triton CPU repositories at these precisions, one server for all (--device cpu).",
    )
    p.add_argument(
        "--eval-shoppers",
        type=int,
        default=24,
        help="With --precisions and a trained artefact: evaluation lists scored through "
        "each precision for its agreement with fp32 (as the export checks it).",
    )
    p.add_argument(
        "--triton-runtime",
        choices=["onnxruntime", "torch"],
        default="onnxruntime",
        help="What the python-backend model runs inside Triton: the exported ONNX graph on "
        "onnxruntime (CUDA provider when installed), or the eager model on torch (GPU boxes "
        "without onnxruntime-gpu). --fp16 applies to it too.",
    )
    p.add_argument(
        "--clients",
        type=int,
        default=1,
        help="Concurrent Triton clients, each sending its own batches (what dynamic batching "
        "merges); the local backend is always one caller.",
    )
    p.add_argument(
        "--dynamic-batching",
        choices=["on", "off", "both"],
        default="on",
        help="Triton's dynamic batcher in the generated config.pbtxt; both = one server of each.",
    )
    p.add_argument("--doc", default=str(ROOT / "docs" / "ranker.md"))
    p.add_argument("--no-doc", action="store_true", help="Print only.")
    args = p.parse_args(argv)
    if args.clients < 1:
        p.error("--clients must be >= 1")
    if args.precisions and args.device != "cpu":
        p.error("--precisions are the CPU path's; the GPU repository serves fp32")
    if not args.no_doc:
        # Made before the run, not when its table is appended at the end.
        Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str]) -> int:
    import torch

    from devstack.triton_server import TritonProcess, free_port
    from offline.ranker.cpu_precision import cpu_flags
    from offline.ranker.export import export_onnx, write_model_repository, write_torch_runtime

    args = parse_args(argv)
    load_at_start = os.getloadavg()[0]
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    os.environ["RANKER_ORT_THREADS"] = str(args.threads)
    model, source, artefact = _model(args)
    rng = np.random.default_rng(0)
    plan = {
        (b, length): [_inputs(b, length, rng) for _ in range(args.warmup + args.iters)]
        for length in args.seq_len
        for b in args.batch_sizes
    }
    rows: list[tuple[str, int, int, dict[str, float]]] = []
    agreement: list[str] = []
    local = _torch_fn(model, args.device, args.fp16)
    for (b, length), batches in {} if args.skip_local else plan.items():
        label = "local torch" + (" fp16" if args.fp16 else "")
        rows.append((label, b, length, _measure(local, batches, args.warmup)))
        print(rows[-1], flush=True)
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.dynamic_batching]
    if args.precisions and not args.skip_triton:
        precision_rows, agreement = _precision_rows(args, model, artefact, plan)
        rows.extend(precision_rows)
    for batching in [] if args.skip_triton or args.precisions else modes:
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(model.to("cpu").float(), Path(tmp) / "model.onnx")
            repo = Path(tmp) / "repo"
            write_model_repository(
                onnx_path,
                repo,
                "ranker_bert",
                "cpu",
                max_batch_size=max(args.batch_sizes) * args.clients,
                python_on_gpu=args.device == "cuda",
                dynamic_batching=batching,
            )
            if args.triton_runtime == "torch":
                write_torch_runtime(model, repo / "ranker_bert" / "1")
                os.environ["RANKER_TRITON_FP16"] = "1" if args.fp16 else "0"
            server = TritonProcess(
                repo,
                grpc_port=free_port(),
                http_port=free_port(),
                metrics_port=free_port(),
                log_file=Path(tmp) / "triton.log",
            ).start()
            try:
                server.wait_ready(300)
                label = (
                    f"Triton gRPC ({args.triton_runtime}"
                    + (" fp16" if args.fp16 else "")
                    + f", dynamic batching {'on' if batching else 'off'}"
                    + (f", {args.clients} clients)" if args.clients > 1 else ")")
                )
                connect = functools.partial(_triton_fn, server.grpc_url, "ranker_bert")
                for (b, length), batches in plan.items():
                    measured = _measure_clients(connect, batches, args.warmup, args.clients)
                    rows.append((label, b, length, measured))
                    print(rows[-1], flush=True)
            finally:
                server.stop()
    base_length = args.seq_len[0]
    ratios = _ratios_to_fp32(rows, base_length)
    device = _device_name(args.device)
    command = "python scripts/bench_ranker.py " + " ".join(argv)
    several = len(args.seq_len) > 1
    lines = [
        f"### {device}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command.strip()}`; model: {source}; pair length(s) "
        f"{', '.join(map(str, args.seq_len))} tokens; "
        f"{args.iters} timed calls per row (per client) after {args.warmup} warm-up; "
        f"{args.clients} Triton client(s) sending at once, each call a batch of the row's "
        f"size; {args.threads} CPU thread(s) for torch, onnxruntime and OpenVINO.",
        "",
        f"CPU flags: {', '.join(cpu_flags()) or 'unknown'}; {os.cpu_count()} cores, 1-minute "
        f"load average {load_at_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
        "(other jobs share this CPU: compare rows of one run, not runs).",
        "",
        "| path | batch | tokens | pairs/s | p50 ms | p95 ms | pairs/s vs fp32"
        + (f" | vs fp32 at {base_length} tokens |" if several else " |"),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if several else ""),
        *(
            f"| {path} | {b} | {length} | {m['pairs_s']:.0f} | {m['p50_ms']:.1f} "
            f"| {m['p95_ms']:.1f} | {ratios.get((path, b, length), ('', ''))[0]} |"
            + (f" {ratios.get((path, b, length), ('', ''))[1]} |" if several else "")
            for path, b, length, m in rows
        ),
        "",
    ]
    if agreement:
        lines += [
            f"Agreement with fp32 at the trained length ({artefact.max_length} tokens) on "
            f"{args.eval_shoppers} real candidate lists of 50, scored through the same "
            "server (the export's check: Spearman mean >= 0.99 and NDCG@10 at most 1% "
            "below fp32's):",
            "",
            "| scored by | Spearman mean | Spearman min | NDCG@10 | vs fp32 | agrees |",
            "|---|---:|---:|---:|---:|---|",
            *agreement,
            "",
        ]
    table = "\n".join(lines)
    print(table)
    if not args.no_doc:
        with open(args.doc, "a") as doc:
            doc.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
