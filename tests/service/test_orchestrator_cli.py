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

from client.cli import build_parser, format_recommendations, recommend_request, shopper_event
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
                reasons=[
                    orchestrator_pb2.RecommendationReason(
                        kind=orchestrator_pb2.REASON_KIND_SIMILAR_TO_HISTORY_ITEM,
                        text='Similar to "Teapot" from your history',
                        history_item_id="SKU7",
                    ),
                    orchestrator_pb2.RecommendationReason(
                        kind=orchestrator_pb2.REASON_KIND_POPULAR_IN_CATEGORY,
                        text="Popular in home",
                        category="home",
                    ),
                ],
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
    assert "Similar to" not in text  # reasons only with --explain
    explained = format_recommendations(response, explain=True).splitlines()
    at = next(i for i, line in enumerate(explained) if "Mug (home/kitchen)" in line)
    assert explained[at + 1 : at + 3] == [
        '    - Similar to "Teapot" from your history [similar_to_history_item: item SKU7]',
        "    - Popular in home [popular_in_category: category home]",
    ]


def test_filter_and_paging_flags_become_the_request_and_the_token_is_printed() -> None:
    args = build_parser().parse_args(
        [
            "recommend",
            "--user",
            "u",
            "--category",
            "home > kitchen",
            "--category",
            "toys/games",
            "--exclude-category",
            "grocery",
            "--min-price",
            "2.5",
            "--max-price",
            "30",
            "--page-token",
            "TOKEN1",
        ]
    )
    request = recommend_request(
        "u",
        3,
        categories=args.category,
        exclude_categories=args.exclude_category,
        min_price=args.min_price,
        max_price=args.max_price,
        page_token=args.page_token,
    )
    assert [list(p.levels) for p in request.filters.include_categories] == [
        ["home", "kitchen"],
        ["toys", "games"],
    ]
    assert [list(p.levels) for p in request.filters.exclude_categories] == [["grocery"]]
    assert (request.filters.min_price, request.filters.max_price) == (2.5, 30.0)
    assert request.page_token == "TOKEN1"
    assert not recommend_request("u", 3).filters.HasField("min_price")
    short = orchestrator_pb2.RecommendResponse(
        items=[orchestrator_pb2.Recommendation(item_id="SKU1")],
        filtered_short=True,
        filtered_out_count=17,
        next_page_token="NEXT",
    )
    text = format_recommendations(short)
    assert "short: 1 items" in text
    assert "17 candidates filtered out" in text
    assert "next page: --page-token NEXT" in text


def test_bad_price_range_is_reported_by_the_service_message(
    orchestrator: tuple[str, Path],
) -> None:
    target, _ = orchestrator
    bad = _cli(
        "recommend", "--target", target, "--user", "u", "--min-price", "9", "--max-price", "1"
    )
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT" in bad.stderr
    assert "min_price (9.0) must not be above max_price (1.0)" in bad.stderr


def test_no_learned_model_no_contributions() -> None:
    text = format_recommendations(
        orchestrator_pb2.RecommendResponse(items=[orchestrator_pb2.Recommendation(item_id="S")]),
        explain=True,
    )
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
    assert "why:" not in format_recommendations(response)  # contributions only with --explain
    lines = format_recommendations(response, explain=True).splitlines()
    assert lines[2] == "    why: own_event_count +0.422, retrieval_rank -0.125"
    assert any("ranking_model=ltr-1" in line for line in lines if line.startswith("versions:"))


def test_triton_check_reports_unreachable() -> None:
    assert check_triton(dead_addr(), timeout_s=0.5) == "UNAVAILABLE"
