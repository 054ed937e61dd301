"""The ``recsys`` CLI and ``python -m services.orchestrator`` as processes: health, error
reporting and exit codes, JSON output, and a clean SIGTERM shutdown. The orchestrator's
downstreams are ports nothing listens on, so every Recommend fails at the gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.cli import format_recommendations, recommend_request, shopper_event
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2
from shared.health import check_triton
from tests.integration.conftest import dead_addr, free_port_block

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    var = tmp_path_factory.mktemp("orch")
    port = free_port_block(1)
    dead = dead_addr()
    env = {
        **os.environ,
        "RECSYS_ORCHESTRATOR_PORT": str(port),
        "RECSYS_ORCHESTRATOR_TRACES_DIR": str(var / "traces"),
        "RECSYS_ORCHESTRATOR_GRACE_PERIOD_S": "1",
        **{
            f"RECSYS_ORCHESTRATOR_{name}_ADDR": dead
            for name in ("PRIVACY_GATEWAY", "FEATURE_STORE", "RETRIEVAL", "RANKER", "RERANKER")
        },
    }
    log = (var / "orchestrator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.orchestrator"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    target = f"127.0.0.1:{port}"
    try:
        for _ in range(120):
            if _cli("health", "--target", target).returncode == 0:
                break
            assert proc.poll() is None, (var / "orchestrator.log").read_text()
            time.sleep(0.25)
        yield target, var
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        log.close()
        assert proc.returncode == 0, (var / "orchestrator.log").read_text()


def test_health_of_one_service_and_of_all(orchestrator: tuple[str, Path]) -> None:
    target, _ = orchestrator
    one = _cli("health", "--target", target)
    assert one.returncode == 0
    assert "SERVING" in one.stdout
    live = _cli("--json", "health", "--target", target, "--service", "liveness")
    assert json.loads(live.stdout)[0]["status"] == "SERVING"
    unknown = _cli("health", "--target", target, "--service", "acme.NoSuchService")
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stdout
    down = _cli("health", "--target", dead_addr())
    assert down.returncode == 1
    assert "UNAVAILABLE" in down.stdout
    # --all checks the default local ports; whatever runs there, every row is reported.
    every = _cli("--json", "health", "--all", "--triton-http", dead_addr())
    rows = json.loads(every.stdout)
    assert [r["name"] for r in rows] == [
        "orchestrator",
        "privacy_gateway",
        "feature_store",
        "retrieval",
        "ranker",
        "reranker",
        "triton",
    ]
    assert rows[-1]["status"] == "UNAVAILABLE"
    assert every.returncode == (0 if all(r["status"] == "SERVING" for r in rows) else 1)


def test_errors_are_reported_with_their_code_and_exit_1(orchestrator: tuple[str, Path]) -> None:
    target, _ = orchestrator
    rec = _cli("recommend", "--target", target, "--user", "cli-shopper", "-k", "3")
    assert rec.returncode == 1
    assert rec.stderr.startswith("error: UNAVAILABLE: the privacy gateway is unavailable")
    bad_k = _cli("recommend", "--target", target, "--user", "cli-shopper", "-k", "0")
    assert bad_k.returncode == 1
    assert "error: INVALID_ARGUMENT: k must be in [1, 100]" in bad_k.stderr
    event = _cli("log-event", "--target", target, "--user", "cli-shopper", "--item", "SKU1")
    assert event.returncode == 1
    assert "UNAVAILABLE" in event.stderr


def test_malformed_arguments_exit_2() -> None:
    ctx = _cli("recommend", "--user", "u", "--context", "no-equals-sign")
    assert ctx.returncode == 2
    assert "--context expects key=value" in ctx.stderr
    method = _cli("recommend", "--user", "u", "--method", "random")
    assert method.returncode == 2


def test_request_builders_and_formatting() -> None:
    plain = recommend_request("u", 5)
    assert not plain.HasField("diversity")  # service defaults apply
    tuned = recommend_request(
        "u", 5, method="mmr", tradeoff=0.3, exclude=["A"], context={"page": "home"}
    )
    assert tuned.diversity.method == common_pb2.RERANK_METHOD_MMR
    assert tuned.diversity.tradeoff == pytest.approx(0.3)
    assert list(tuned.excluded_item_ids) == ["A"]
    assert dict(tuned.context) == {"page": "home"}
    event = shopper_event("u", "SKU1", "purchase", quantity=2)
    assert len(event.event_id) == 32
    assert event.type == common_pb2.EVENT_TYPE_PURCHASE
    assert not event.HasField("timestamp")

    response = orchestrator_pb2.RecommendResponse(
        items=[
            orchestrator_pb2.Recommendation(
                item_id="SKU1",
                title="Mug",
                category_path=["home", "kitchen"],
                score=0.9,
                relevance_score=0.8,
                retrieval_score=0.7,
                stages=[common_pb2.STAGE_RETRIEVAL, common_pb2.STAGE_RERANKER],
            )
        ],
        degraded_stages=[
            orchestrator_pb2.DegradedStage(stage=common_pb2.STAGE_RANKER, reason="unavailable")
        ],
        versions={"retrieval_index": "v1"},
        trace_id="ab" * 16,
    )
    text = format_recommendations(response)
    assert "Mug (home/kitchen) [retrieval,reranker]" in text
    assert "degraded: ranker: unavailable" in text
    assert "versions: retrieval_index=v1" in text
    assert f"trace id: {'ab' * 16}" in text
    assert "why:" not in text  # no learned ranking model, nothing to explain


def test_format_prints_the_learned_models_contributions() -> None:
    response = orchestrator_pb2.RecommendResponse(
        items=[
            orchestrator_pb2.Recommendation(
                item_id="SKU1",
                title="Mug",
                contributions=[
                    common_pb2.FeatureContribution(feature="own_event_count", value=0.4216),
                    common_pb2.FeatureContribution(feature="retrieval_rank", value=-0.125),
                ],
            )
        ],
        versions={"ranking_model": "ltr-1"},
    )
    lines = format_recommendations(response).splitlines()
    assert lines[2] == "    why: own_event_count +0.422, retrieval_rank -0.125"
    assert "ranking_model=ltr-1" in lines[-2]


def test_triton_check_reports_unreachable() -> None:
    assert check_triton(dead_addr(), timeout_s=0.5) == "UNAVAILABLE"
