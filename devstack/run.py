"""Start the whole recommender locally and show it working: ``python -m devstack.run``
(``scripts/run_stack.py``, called by scripts/run.sh).

Steps, each printed as it happens:
  1. prepare what is missing: the pseudonymization key ring, the retrieval index (trained in
     seconds), the BERT ranker (--quick fine-tune) and its Triton model repository, the
     feature store database seeded through the pseudonymizer, all from --data (a folder in
     the data format, docs/data.md, or a built-in name; default the synthetic shop);
  2. start every service as its own process on loopback (Triton too), wait for health SERVING;
  3. release the DP popularity list once (privacy gateway) so the fallback has one;
  4. send a few real Recommend calls and a LogEvents through the CLI client code, print them
     and the trace tree of one request;
  5. keep serving until Ctrl-C (or exit with --demo-only), then stop every child cleanly.

Everything lives under var/stack/ (var/stack-<folder name> for other data; --var): children
log to logs/<service>.log, spans go to traces/<service>.jsonl, models to models/, the SQLite
databases and the key ring next to them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from client import cli
from client.ports import DEFAULT_BASE_PORT
from devstack import triton_server
from devstack.stack import (
    Layout,
    PrepError,
    Stack,
    local_specs,
    prepare,
    release_popularity,
)
from devstack.traces import (
    build_tree,
    load_spans,
    render_tree,
    span_files,
    trace_services,
)
from shared.gen.acme.recsys.v1 import orchestrator_pb2

DEMO_USERS = ("user-00001", "user-00042", "user-00137")


def demo_users(data: str) -> tuple[list[str], str]:
    """Three shoppers of ``data`` to ask for (the synthetic shop's usual three; otherwise the
    three with the most events) and an item for the demo event."""
    if data == "synthetic":
        return list(DEMO_USERS), "SKU000001"
    from shared.data.datasets import load_data

    dataset = load_data(data)
    counts: dict[str, int] = {}
    for x in dataset.interactions:
        counts[x.user_id] = counts.get(x.user_id, 0) + 1
    busiest = sorted(counts, key=lambda u: (-counts[u], u))[:3]
    return busiest, next(iter(dataset.items))


def say(message: str) -> None:
    # Output piped into `head` that already exited must not skip stopping the children.
    with contextlib.suppress(BrokenPipeError):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


async def warm_up(
    target: str, requests: Sequence[orchestrator_pb2.RecommendRequest], within_s: float = 60.0
) -> None:
    """Send the demo's requests until every one comes back with no stage degraded.

    The first batches pay for lazy initialisation (ONNX session, allocator, Triton's model
    instance), and the orchestrator picks up the DP popularity release just made (which a
    cold-start shopper's answer needs) on its next refresh, a second or so later. Requests
    go on until all answer in full or ``within_s`` passes; the demo then shows whatever the
    stack answers, degradations included."""
    deadline = time.monotonic() + within_s
    pending = list(requests)
    while pending:
        answers = [await cli.recommend(target, r, timeout_s=30.0) for r in pending]
        pending = [r for r, a in zip(pending, answers, strict=True) if a.degraded_stages]
        if pending and time.monotonic() > deadline:
            reasons = sorted({d.reason for a in answers for d in a.degraded_stages})
            say(f"warm-up still degraded after {within_s:.0f} s: {', '.join(reasons)}")
            return
        if pending:
            await asyncio.sleep(0.5)


async def demo(layout: Layout, users: list[str], fallback_item: str) -> str:
    """A few real requests through the CLI client code; returns one trace id to print."""
    target = layout.addr("orchestrator")
    trace_id = ""
    # Unprinted warm-up requests keep lazy initialisation out of the figures below.
    cases = list(zip(users, ["dpp", "mmr", "none"], [0.5, 0.7, 0.0], strict=False))
    requests = [
        cli.recommend_request(user, 8, method=method, tradeoff=tradeoff, exclude_purchased=True)
        for user, method, tradeoff in cases
    ]
    say("warming up until the full pipeline answers")
    await warm_up(target, requests)
    for (user, method, tradeoff), request in zip(cases, requests, strict=True):
        started = time.monotonic()
        response = await cli.recommend(target, request, timeout_s=10.0)
        took = (time.monotonic() - started) * 1000
        say(f"Recommend user={user} k=8 method={method} tradeoff={tradeoff} ({took:.0f} ms)")
        # The first answer with its reasons, as `recsys recommend --explain` prints them.
        explain = user == users[0]
        print(cli.format_recommendations(response, explain=explain), flush=True)
        trace_id = trace_id or response.trace_id
    first = response.items[0].item_id if response.items else fallback_item
    ack = await cli.log_events(
        target,
        [cli.shopper_event(users[0], first, "add_to_cart", event_id="demo-cart-1")],
    )
    say(
        f"LogEvents add_to_cart: accepted={ack.accepted_count} duplicates={ack.duplicate_count}"
        " (the same event id again is a duplicate, not a second event)"
    )
    return trace_id


def print_trace(layout: Layout, trace_id: str) -> None:
    # Our span processors flush every 0.5 s; Triton's exporter batches for a few seconds.
    want = {"orchestrator", "ranker"} | ({"triton"} if layout.ranker_backend == "triton" else set())
    deadline = time.monotonic() + 10.0
    while True:
        time.sleep(0.5)
        roots = build_tree(load_spans(span_files(layout.traces_dir)), trace_id)
        if trace_services(roots) >= want or time.monotonic() > deadline:
            break
    say(f"trace {trace_id} (python scripts/trace_tree.py {trace_id}):")
    print(render_tree(roots), flush=True)


def parse_args(argv: list[str] | None, root: Path) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m devstack.run",
        description="Start the whole recommender locally and show it working.",
    )
    p.add_argument(
        "--data",
        default="synthetic",
        metavar="PATH|NAME",
        help="the catalog and shoppers to serve: a folder with items and events files (see "
        "docs/data.md) or a built-in name (synthetic, online-retail, instacart); "
        "default: synthetic",
    )
    p.add_argument(
        "--var",
        default=None,
        help="artefacts, logs, traces, databases (default var/stack, or var/stack-<name> for "
        "other data); a folder of its own so models trained by other jobs on other data "
        "are never mixed in",
    )
    p.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help="orchestrator port; the others keep their default offsets from it",
    )
    p.add_argument("--triton-http-port", type=int, default=triton_server.HTTP_PORT)
    p.add_argument("--triton-grpc-port", type=int, default=triton_server.GRPC_PORT)
    p.add_argument("--triton-metrics-port", type=int, default=triton_server.METRICS_PORT)
    p.add_argument(
        "--otlp-port", type=int, default=4318, help="the span sink Triton exports its traces to"
    )
    p.add_argument(
        "--ranker-backend",
        choices=["triton", "local"],
        default="triton",
        help="triton (default) serves BERT through a real Triton server; local runs torch",
    )
    p.add_argument(
        "--cpu-precision",
        choices=triton_server.CPU_PRECISION_CHOICES,
        default="auto",
        help="what the ranker's Triton CPU repository serves (--ranker-backend triton); auto "
        "(default): the fastest that ranks like fp32 on this machine, measured once; a "
        "repository exported otherwise is exported again",
    )
    p.add_argument("--candidates", type=int, default=50, help="N retrieved per request")
    p.add_argument(
        "--feature-store-url",
        default="",
        help="the feature store's SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db); "
        "default: the embedded SQLite file in --var, seeded on first start like it",
    )
    p.add_argument(
        "--deadline-s",
        type=float,
        default=5.0,
        help="end-to-end budget of a request without a deadline (BERT on CPU is slow)",
    )
    p.add_argument("--demo-only", action="store_true", help="exit after the demo requests")
    p.add_argument("--no-demo", action="store_true", help="start and serve, skip the demo")
    args = p.parse_args(argv)
    if args.var is None:
        name = "" if args.data == "synthetic" else Path(args.data).resolve().name
        args.var = str(root / "var" / (f"stack-{name}" if name else "stack"))
    return args


def main(argv: list[str] | None = None, *, root: Path | None = None) -> int:
    """Run the stack from ``root`` (the checkout; default the working directory)."""
    root = (root or Path.cwd()).resolve()
    # The children inherit these: the models come from installed packages, never the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv, root)
    layout = Layout(
        root=root,
        var=Path(args.var).resolve(),
        base_port=args.base_port,
        triton_http_port=args.triton_http_port,
        triton_grpc_port=args.triton_grpc_port,
        triton_metrics_port=args.triton_metrics_port,
        otlp_port=args.otlp_port,
        ranker_backend=args.ranker_backend,
        candidate_count=args.candidates,
        default_deadline_s=args.deadline_s,
        feature_store_url=args.feature_store_url,
        cpu_precision=args.cpu_precision,
    )
    say(f"local stack in {layout.var} (ranker backend: {layout.ranker_backend})")
    try:
        prepare(layout, data=args.data, progress=say)
    except PrepError as exc:
        say(str(exc))
        return 1

    stack = Stack(local_specs(layout), layout.logs_dir, root, progress=say)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C must raise KeyboardInterrupt even when this process inherited SIGINT as ignored
    # (started in the background by a non-interactive shell).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        say("starting the services")
        stack.start()
        try:
            asyncio.run(stack.wait_ready())
        except RuntimeError as exc:
            triton = stack.processes.get("triton")
            if triton is None or (triton.alive and not str(exc).startswith("triton")):
                raise
            say(f"Triton could not run here: {str(exc).splitlines()[0]} (see {triton.log_path})")
            say("falling back to the ranker's local torch backend; restarting the stack")
            stack.stop_all()
            layout.ranker_backend = "local"
            stack = Stack(local_specs(layout), layout.logs_dir, root, progress=say)
            stack.start()
            asyncio.run(stack.wait_ready())
        asyncio.run(release_popularity(layout, progress=say))
        print(flush=True)
        health = asyncio.run(
            cli.check_all(
                {name: layout.addr(name) for name in layout.ports},
                f"{layout.host}:{layout.triton_http_port}"
                if layout.ranker_backend == "triton"
                else None,
            )
        )
        for row in health:
            say(f"health {row.name:<16} {row.target:<22} {row.status}")
        if not args.no_demo:
            trace_id = asyncio.run(demo(layout, *demo_users(args.data)))
            if trace_id:
                print_trace(layout, trace_id)
        if args.demo_only:
            return 0
        say(
            f"serving; try: recsys recommend --user {demo_users(args.data)[0][0]} -k 10 "
            f"--target {layout.addr('orchestrator')}   (Ctrl-C stops everything)"
        )
        while not stop.wait(1.0):
            for name, proc in stack.processes.items():
                if not proc.alive:
                    say(f"{name} exited; see {proc.log_path}")
                    stop.set()
        return 0
    except KeyboardInterrupt:
        say("Ctrl-C: stopping")
        return 0
    finally:
        codes = stack.stop_all()
        say("stopped: " + json.dumps(codes))


if __name__ == "__main__":
    raise SystemExit(main())
