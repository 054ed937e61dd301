"""The whole stack as processes: the README's main command, one trace across all services,
every degradation path by killing a real process (and recovery after its restart), and proof
that no raw user reference reaches any database, log, span attribute or trace file.

One stack per module; small data and k keep the wall time to a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import cli
from devstack.stack import Layout, Stack, local_specs, release_popularity
from devstack.traces import build_tree, load_spans, span_files, trace_services
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2
from tests.integration.conftest import REPO, build_small_artefacts, small_layout

pytestmark = [pytest.mark.slow, pytest.mark.triton]

STAGE = common_pb2.Stage
# Raw references used by this module; none may appear anywhere the services write.
RAW_REFS = ("it-shopper-7f3a91", "it-shopper-c0ffee", "user-00007")
DEMO_REFS = ("user-00001", "user-00042", "user-00137")
ALL_SERVICES = {
    "orchestrator",
    "privacy-gateway",
    "feature-store",
    "retrieval",
    "ranker",
    "reranker",
}
# Triton's own spans arrive through the stack's OTLP sink.
TRACED = ALL_SERVICES | {"triton"}
K = 4


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    built = small_layout(tmp_path_factory.mktemp("stack"), ranker_backend="triton")
    build_small_artefacts(built)
    return built


@pytest.fixture(scope="module")
def main_command(layout: Layout) -> subprocess.CompletedProcess[str]:
    """scripts/run_stack.py --demo-only on the prepared folder: every preparation step finds
    its artefact, then the whole stack starts, answers the demo and stops."""
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "run_stack.py"),
            "--demo-only",
            "--var",
            str(layout.var),
            "--base-port",
            str(layout.base_port),
            "--triton-http-port",
            str(layout.triton_http_port),
            "--triton-grpc-port",
            str(layout.triton_grpc_port),
            "--triton-metrics-port",
            str(layout.triton_metrics_port),
            "--otlp-port",
            str(layout.otlp_port),
            "--candidates",
            "20",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,
    )


def test_main_command_shows_real_recommendations_and_a_trace(
    main_command: subprocess.CompletedProcess[str],
) -> None:
    out = main_command.stdout
    assert main_command.returncode == 0, out[-3000:] + main_command.stderr[-3000:]
    assert "already there" in out  # the prepared artefacts were reused, not retrained
    assert "orchestrator is SERVING" in out
    assert "triton is SERVING" in out
    assert out.count("degraded: none (full pipeline)") == 3, out[-4000:]
    assert "[retrieval,ranker,reranker]" in out
    assert "LogEvents add_to_cart: accepted=1" in out
    assert "/acme.recsys.v1.RankerService/ScoreCandidates [ranker server]" in out
    assert "stopped:" in out


@pytest.fixture(scope="module")
def stack(layout: Layout, main_command: subprocess.CompletedProcess[str]) -> Iterator[Stack]:
    # After the main command, so the two never hold the same ports at once.
    running = Stack(local_specs(layout), layout.logs_dir, REPO, progress=lambda _: None)
    running.start()
    try:
        asyncio.run(running.wait_ready())
        asyncio.run(release_popularity(layout, progress=lambda _: None))
        # The first requests pay for Triton's lazy initialisation; later ones must not.
        _wait_full(layout)
        yield running
    finally:
        running.stop_all(grace_s=10)


def _recommend(layout: Layout, user: str = RAW_REFS[2]) -> orchestrator_pb2.RecommendResponse:
    """``user-00007`` has a purchase history in the small dataset; RAW_REFS[0] has none."""
    request = cli.recommend_request(user, K, method="dpp", tradeoff=0.5)
    return asyncio.run(cli.recommend(layout.addr("orchestrator"), request, timeout_s=30))


def _flags(response: orchestrator_pb2.RecommendResponse) -> dict[int, str]:
    return {d.stage: d.reason for d in response.degraded_stages}


def test_recommend_and_log_events_through_the_stack(layout: Layout, stack: Stack) -> None:
    response = _recommend(layout, "user-00007")
    assert not response.degraded_stages
    assert len(response.items) == K
    assert all(
        list(i.stages) == [STAGE.STAGE_RETRIEVAL, STAGE.STAGE_RANKER, STAGE.STAGE_RERANKER]
        for i in response.items
    )
    assert response.versions["ranker_backend"] == "triton"
    assert response.versions["retrieval_index"] == "test-v1"

    target = layout.addr("orchestrator")
    events = [
        cli.shopper_event(RAW_REFS[1], response.items[0].item_id, "purchase", event_id="it-p-1"),
        cli.shopper_event(RAW_REFS[1], response.items[1].item_id, "view", event_id="it-v-1"),
    ]
    ack = asyncio.run(cli.log_events(target, events))
    assert (ack.accepted_count, ack.duplicate_count) == (2, 0)
    again = asyncio.run(cli.log_events(target, events))
    assert (again.accepted_count, again.duplicate_count) == (0, 2)
    # The purchase is durable: the shopper's next answer excludes it when asked.
    after = asyncio.run(
        cli.recommend(
            target,
            cli.recommend_request(RAW_REFS[1], K, exclude_purchased=True),
            timeout_s=30,
        )
    )
    assert response.items[0].item_id not in {i.item_id for i in after.items}


def test_shopper_without_history_gets_dp_popularity_candidates_through_the_ranker(
    layout: Layout, stack: Stack
) -> None:
    response = _recommend(layout, RAW_REFS[0])
    assert not response.degraded_stages
    assert len(response.items) == K
    assert all(
        list(i.stages) == [STAGE.STAGE_POPULARITY, STAGE.STAGE_RANKER, STAGE.STAGE_RERANKER]
        for i in response.items
    )
    assert response.versions["popularity_release"]
    assert response.versions["ranker_backend"] == "triton"


def test_one_trace_spans_every_service_with_parent_links(layout: Layout, stack: Stack) -> None:
    response = _recommend(layout)
    assert not response.degraded_stages
    trace_id = response.trace_id
    assert len(trace_id) == 32
    roots: list = []
    # Every span processor, Triton's included, exports every 0.5 s; a busy 2-core machine
    # can hold an export back for seconds, so wait up to a minute (it breaks out when whole).
    for _ in range(240):
        spans = load_spans(span_files(layout.traces_dir))
        roots = build_tree(spans, trace_id)
        if len(roots) == 1 and trace_services(roots) >= TRACED:
            break
        time.sleep(0.25)
    assert [r.name for r in roots] == ["/acme.recsys.v1.RecommendationService/Recommend"]
    assert trace_services(roots) >= TRACED
    mine = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in mine}
    servers = [s for s in mine if s.kind == "server" and s.service != "orchestrator"]
    assert {s.service for s in servers} >= TRACED - {"orchestrator"}
    triton_entries = 0
    for server in servers:
        # Every server span hangs below a client span of its caller: the orchestrator's for
        # the gRPC services, the ranker's Triton call for Triton's request span (whose
        # model and compute spans nest inside it).
        parent = by_id[server.parent_id or ""]
        if server.service == "triton":
            if parent.service != "triton":
                assert (parent.service, parent.kind) == ("ranker", "client")
                triton_entries += 1
            continue
        assert parent.kind == "client"
        assert parent.service == "orchestrator"
        assert parent.name == server.name
        assert parent.start <= server.start
        assert server.end <= parent.end
    assert triton_entries == 1


def _wait_full(layout: Layout, within_s: float = 60.0) -> orchestrator_pb2.RecommendResponse:
    """The first full answer within ``within_s``. A restarted dependency is reached again only
    when the orchestrator's channel leaves gRPC's reconnect backoff (1 s, growing 1.6x), so
    recovery takes a few seconds after the process is SERVING again."""
    import grpc

    deadline = time.monotonic() + within_s
    while True:
        try:
            response = _recommend(layout)
            if not response.degraded_stages or time.monotonic() > deadline:
                return response
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


@pytest.mark.parametrize(
    ("victims", "stage", "stages"),
    [
        (["ranker"], STAGE.STAGE_RANKER, [STAGE.STAGE_RETRIEVAL, STAGE.STAGE_RERANKER]),
        (["triton"], STAGE.STAGE_RANKER, [STAGE.STAGE_RETRIEVAL, STAGE.STAGE_RERANKER]),
        (["reranker"], STAGE.STAGE_RERANKER, [STAGE.STAGE_RETRIEVAL, STAGE.STAGE_RANKER]),
        (["feature_store"], STAGE.STAGE_FEATURE_STORE, [STAGE.STAGE_POPULARITY]),
        (["retrieval"], STAGE.STAGE_RETRIEVAL, [STAGE.STAGE_POPULARITY]),
    ],
)
def test_killed_stage_degrades_then_recovers_after_restart(
    layout: Layout, stack: Stack, victims: list[str], stage: int, stages: list[int]
) -> None:
    for name in victims:
        stack.processes[name].kill()
    degraded = _recommend(layout)
    assert stage in _flags(degraded)
    assert len(degraded.items) == K
    assert all(list(i.stages) == stages for i in degraded.items)

    stack.start(victims)
    asyncio.run(stack.wait_ready(victims))
    if victims == ["triton"]:
        asyncio.run(stack.wait_ready(["ranker"]))
    recovered = _wait_full(layout)
    assert not recovered.degraded_stages, _flags(recovered)
    assert len(recovered.items) == K


def test_no_gateway_no_answer(layout: Layout, stack: Stack) -> None:
    import grpc

    stack.processes["privacy_gateway"].kill()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _recommend(layout)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        stack.start(["privacy_gateway"])
        asyncio.run(stack.wait_ready(["privacy_gateway"]))
    assert not _wait_full(layout).degraded_stages


def _sqlite_text(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        chunks = []
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):
                chunks.append(" ".join(str(v) for v in row))
        return "\n".join(chunks)
    finally:
        conn.close()


def test_no_raw_user_reference_is_stored_logged_or_traced(layout: Layout, stack: Stack) -> None:
    # Runs last in the module: every request above used these raw references.
    stack.stop_all(grace_s=10)  # flush every exporter and log
    refs = RAW_REFS + DEMO_REFS
    databases = [layout.feature_store_db, layout.ledger_db]
    texts = {str(db): _sqlite_text(db) for db in databases}
    files = [
        *layout.logs_dir.glob("*.log"),
        *layout.traces_dir.glob("*.jsonl"),
    ]
    assert {p.stem for p in layout.traces_dir.glob("*.jsonl")} >= ALL_SERVICES
    for path in files:
        texts[str(path)] = path.read_text(errors="replace")
    leaks = [(where, ref) for where, text in texts.items() for ref in refs if ref in text]
    assert leaks == []
    # The scan is not vacuous: the events of this module are in the store, pseudonymized.
    events = sqlite3.connect(f"file:{layout.feature_store_db}?mode=ro", uri=True)
    try:
        (count,) = events.execute(
            "select count(*) from events where event_id in ('it-p-1', 'it-v-1', 'demo-cart-1')"
        ).fetchone()
    finally:
        events.close()
    assert count == 3
