"""Tiny smoke runs of the evaluation and benchmark commands (issue 8): each command runs for
real on small inputs and its figures are checked for shape and sanity, not for speed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import Layout
from tests.integration.conftest import N_USERS, REPO
from tests.integration.local_stack import running_stack

pytestmark = pytest.mark.slow

PEER_ROWS = (
    "popularity",
    "popularity, history excluded",
    "repeat purchases, then popularity",
    "ALS",
    "ALS, history excluded",
    "BPR",
    "BPR, history excluded",
    "item-kNN",
    "item-kNN, history excluded",
)


def _run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _small_retrieval(data: Any, dataset: str, root: Path) -> None:
    """A one-epoch, 16-d retrieval artefact ``root/smoke`` (LATEST) trained on ``data``."""
    import torch

    from offline.retrieval.training import TrainConfig, train
    from shared.artefacts.retrieval import save_artefact as save_retrieval
    from shared.data import temporal_split

    torch.set_num_threads(2)
    train_split, _ = temporal_split(data)
    artefact = train(
        train_split,
        data.items,
        TrainConfig(epochs=1, dim=16),
        seed=0,
        dataset=dataset,
        text_cache_dir=REPO / "var" / "cache" / "retrieval" / "titles",
    )
    save_retrieval(artefact, root, "smoke")


def test_evaluate_command_on_small_synthetic(tmp_path: Path) -> None:
    from services.ranker.model import build_model
    from services.ranker.model import save_artefact as save_ranker
    from shared.data import synthetic
    from shared.data.format import write_folder

    # The artefacts name the data they were trained on: a folder's name.
    shop = write_folder(synthetic.generate(n_items=200, n_users=60), tmp_path / "shop")
    _small_retrieval(synthetic.generate(n_items=200, n_users=60), "shop", tmp_path / "retrieval")
    model, tokenizer = build_model(seed=0)
    save_ranker(
        model, tokenizer, tmp_path / "ranker", "smoke", {"max_length": 32, "dataset": "shop"}
    )
    out = tmp_path / "reports" / "eval.json"  # --json makes its folder
    result = _run(
        [
            "scripts/evaluate.py",
            "--data",
            str(shop),
            "--retrieval-dir",
            str(tmp_path / "retrieval"),
            "--ranker-dir",
            str(tmp_path / "ranker" / "smoke"),
            "--users",
            "5",
            "--candidates",
            "50",
            "--tradeoffs",
            "0.5",
            "--peer-grid",
            "smoke",
            "--resamples",
            "200",
            "--validate-pipeline",
            "--blend-weights",
            "0.25,0.5",
            "--json",
            str(out),
            "--figure",
            str(tmp_path / "fig.png"),
        ]
    )
    report = json.loads(out.read_text())
    assert report["info"]["catalog"].startswith("catalog known at the cut")
    assert report["info"]["validation_users"] == 5
    # A sample says so, in the table's note too.
    assert report["info"]["scope"].startswith("a SAMPLE of 5 of ")
    assert "a SAMPLE of 5" in result.stdout
    rows = {r["method"]: r for r in report["rows"]}
    assert set(rows) == {
        *PEER_ROWS,
        "retrieval",
        "+ BERT",
        "+ BERT blend(0.25)",
        "+ BERT blend(0.5)",
        "+ BERT blend(0.5) + DPP(0.5)",
        "+ BERT blend(0.5) + MMR(0.5)",
    }
    for row in rows.values():
        for key in ("ndcg@10", "recall@50", "coverage@10", "ild@10", "catcov@10"):
            assert 0.0 <= row[key] <= 1.0, (row["method"], key, row[key])
        assert 0.0 <= row["near_dup@10"] <= 45.0
        # --validate-pipeline: every row, peers and stages, has its validation figure.
        assert 0.0 <= row["validation_ndcg@10"] <= 1.0, row["method"]
    # Every stage after retrieval reorders the same candidates: recall@50 of a 50-item list
    # cannot change, so a difference would mean items were lost or invented.
    assert rows["+ BERT"]["recall@50"] == pytest.approx(rows["retrieval"]["recall@50"])
    assert rows["+ BERT blend(0.5)"]["recall@50"] == pytest.approx(rows["retrieval"]["recall@50"])
    # Every row but the reference carries its paired CI to retrieval order and to the best
    # baseline (chosen on validation), and the printed table shows them.
    best = report["info"]["best_baseline"]
    assert best in PEER_ROWS
    for name, row in rows.items():
        for key, reference in (("vs_retrieval", "retrieval"), ("vs_best_baseline", best)):
            ci = row[key]
            if name == reference:
                assert ci is None
                continue
            assert ci["low"] <= ci["mean"] <= ci["high"], (name, key, ci)
            gap = row["ndcg@10"] - rows[reference]["ndcg@10"]
            assert ci["mean"] == pytest.approx(gap)
    assert "Δ vs retrieval [95% CI]" in result.stdout
    assert "Δ vs best baseline [95% CI]" in result.stdout
    for name in PEER_ROWS:
        assert f"| {name} |" in result.stdout
    # The blend weight is the one the validation cut prefers, not the test period.
    blends = ["+ BERT blend(0.25)", "+ BERT blend(0.5)"]
    chosen = report["info"]["chosen_blend"]
    assert chosen == max(blends, key=lambda b: rows[b]["validation_ndcg@10"])
    assert f"blend chosen on validation: {chosen}" in result.stdout
    assert (tmp_path / "fig.png").stat().st_size > 1000


def _evaluate_synthetic_folder(
    tmp_path: Path, n_users: int, *extra: str, timeout: float = 300
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    """``scripts/evaluate.py --methods peers`` on a small synthetic data folder (smoke peer
    grid, 200 resamples) with ``extra`` arguments: (the run, its JSON report, its record)."""
    from shared.data import synthetic
    from shared.data.format import write_folder

    shop = write_folder(synthetic.generate(n_items=150, n_users=n_users), tmp_path / "shop")
    record = tmp_path / "evaluation.md"
    out = tmp_path / "eval.json"
    result = _run(
        [
            "scripts/evaluate.py",
            "--data",
            str(shop),
            "--methods",
            "peers",
            *extra,
            "--peer-grid",
            "smoke",
            "--resamples",
            "200",
            "--json",
            str(out),
            "--figure",
            str(tmp_path / "fig.png"),
            "--record",
            str(record),
        ],
        timeout=timeout,
    )
    return result, json.loads(out.read_text()), record.read_text()


def test_evaluate_peers_only_on_every_shopper_needs_no_artefact(tmp_path: Path) -> None:
    result, report, text = _evaluate_synthetic_folder(tmp_path, 50)
    info = report["info"]
    assert info["users"] == info["eligible_users"] > 5
    assert info["scope"] == f"all {info['users']} eligible test shoppers"
    assert {r["method"] for r in report["rows"]} == set(PEER_ROWS)
    assert all(r["vs_retrieval"] is None for r in report["rows"])
    # Validation picked the item-kNN similarity among the smoke grid's two.
    knn = info["peers"]["item-kNN"]
    assert knn["grid_points"] == 2
    assert knn["params"]["similarity"] in {"cosine", "bm25"}
    assert "--methods peers" in text
    assert f"all {info['users']} eligible test shoppers" in text
    assert "chosen on validation" in text
    assert "| ALS, history excluded |" in result.stdout


# Trains every served model twice and a 4-step cross-encoder, and scores every candidate with
# it in fp32: over 300 s on a loaded 2-core AVX2 CPU.
@pytest.mark.timeout(660)
def test_evaluate_served_path_chooses_its_default_on_validation(tmp_path: Path) -> None:
    # 30 shoppers: the cross-encoder feature scores every candidate of three rolling cuts and
    # of the evaluated lists, on each side of the test cut; that is most of the run (134 s on
    # an idle 2-core AVX2 CPU, against 230 s at 60 shoppers).
    result, report, text = _evaluate_synthetic_folder(
        tmp_path,
        30,
        "--served",
        "--tradeoffs",
        "0.25,0.5",
        "--candidates",
        "50",
        "--served-bert-steps",
        "4",
        # One earlier cut beside the validation cut (the default has two): each cut trains
        # its own cross-encoder and scores every candidate with it.
        "--served-validation-cuts",
        "0.7",
        timeout=600,
    )
    served = report["info"]["served"]
    rows = {r["method"]: r for r in report["rows"]}
    ranking = served["ranking"]
    diversified = [f"{ranking} + {m}({t})" for m in ("DPP", "MMR") for t in ("0.25", "0.5")]
    rankings = ["served", "served + LTR", "served + LTR + BERT"]
    assert {*rankings, *diversified} <= set(rows)
    assert served["bert_steps"] == 4
    # Every served row was scored on both validation cuts, each with models trained before
    # it; the main table shows the validation cut's figure, the choices use the pooled one.
    val = served["validation_ndcg@10"]
    cuts = served["validation_cuts"]
    assert [c["cut"] for c in cuts] == ["0.8", "0.7"]
    assert all(
        rows[name]["validation_ndcg@10"] == cuts[0]["validation_ndcg@10"][name] for name in val
    )
    total = sum(c["shoppers"] for c in cuts)
    for name in val:
        by_cut = sum(c["validation_ndcg@10"][name] * c["shoppers"] for c in cuts) / total
        assert val[name] == pytest.approx(by_cut)
    assert ranking == max(rankings, key=lambda n: (val[n], -rankings.index(n)))
    assert "cross-encoder: 4 steps" in result.stdout
    # ... and the default follows the knee rule on those figures, not on test.
    floor = (1 - served["knee_tolerance"]) * val[ranking]
    within = [n for n in diversified if val[n] >= floor]
    ild = served["validation_ild@10"]
    assert served["default"] == (max(within, key=lambda n: ild[n]) if within else ranking)
    assert set(served["default_minus"]) == set(rows) - {served["default"]}
    assert "Served path (offline.evaluation.served), chosen on validation" in text
    assert f"| cut 0.7 ({cuts[1]['shoppers']}) |" in text
    assert f"served default chosen on validation: **{served['default']}**" in result.stdout


def test_evaluate_pools_training_seeds_and_refits_the_seeded_rows(tmp_path: Path) -> None:
    result, report, text = _evaluate_synthetic_folder(
        tmp_path,
        30,
        "--served",
        "--no-served-ltr",
        "--served-validation-cuts",
        "",
        "--tradeoffs",
        "0.25",
        "--candidates",
        "50",
        "--seed",
        "3",
        "--seed-check",
        "2",
        "--served-seeds",
        "2",
    )
    info = report["info"]
    # The served choices pooled the validation cut's models of both seeds ...
    cuts = info["served"]["validation_cuts"]
    assert [(c["cut"], c["seed"]) for c in cuts] == [("0.8 s3", 3), ("0.8 s4", 4)]
    assert "on the validation cuts 0.8 pooled, models with seeds 3, 4" in result.stdout
    # ... and the seed check refitted every seeded row with both on the whole training period.
    check = info["seed_check"]
    served = info["served"]
    assert check["seeds"] == [3, 4]
    seeded = {"ALS", "ALS, history excluded", "BPR", "BPR, history excluded", "served"}
    assert seeded | {served["default"]} == set(check["rows"])
    rows = {r["method"]: r for r in report["rows"]}
    for name, r in check["rows"].items():
        # The first seed is the main table's fit; the second is a refit.
        assert r["ndcg@10"][0] == pytest.approx(rows[name]["ndcg@10"])
        assert r["mean"] == pytest.approx(sum(r["ndcg@10"]) / 2)
    # Served rows the check did not refit (one draw each) are not compared with a seed mean.
    unrefitted = {n for n in rows if n.startswith("served")} - set(check["rows"])
    assert set(check["default_minus"]) == set(rows) - {served["default"]} - unrefitted
    assert "Seed check (offline.evaluation.seed_check" in text
    assert "| row | seed 3 | seed 4 | mean | spread |" in result.stdout
    assert "seed check: seed 4 refitted" in result.stdout


def test_privacy_utility_command_fills_the_full_pipeline_column(tmp_path: Path) -> None:
    from offline.evaluation.privacy_utility import candidates
    from shared.data import online_retail

    _small_retrieval(online_retail.load(), "online-retail", tmp_path / "retrieval")
    doc = tmp_path / "privacy.md"
    doc.write_text("# Privacy\n\nintro\n")
    args = [
        "scripts/privacy_utility.py",
        *("--runs", "2", "--validation-runs", "2", "--replicates", "50"),
        *("--write-doc", str(doc)),
    ]
    _run([*args, "--retrieval-dir", str(tmp_path / "retrieval" / "smoke")])
    text = doc.read_text()
    assert text.startswith("# Privacy\n\nintro\n")
    # Every candidate is scored on validation, and one is chosen there.
    validation = [line for line in text.splitlines() if line.startswith("| discrete ")]
    assert len(validation) + text.count("| noisy top-10") == len(candidates())
    assert "Chosen: discrete Laplace, k = " in text
    rows = [line for line in text.splitlines() if line.startswith(("| 0.", "| 1 |", "| 2 |"))]
    assert len(rows) == 4  # epsilon 0.1, 0.5, 1, 2 on test
    full = [float(row.split("|")[4].split("[")[0]) for row in rows]
    popularity = [float(row.split("|")[2].split("[")[0]) for row in rows]
    # Personal lists for shoppers with history beat one list for everyone at every epsilon.
    assert all(f > p for f, p in zip(full, popularity, strict=True))
    assert "test shoppers have a train history" in text
    # Run again without the artefact: the block is replaced, not appended.
    _run(args)
    again = doc.read_text()
    assert again.count("<!-- privacy-utility:begin -->") == 1
    assert "not run (needs --retrieval-dir)" in again


def test_feature_store_benchmark_command(tmp_path: Path) -> None:
    record = tmp_path / "bench.md"
    result = _run(
        [
            "scripts/bench_feature_store.py",
            "--sizes",
            "30",
            "--backends",
            "sqlite",
            "--record",
            str(record),
        ]
    )
    assert "| sqlite | 30 |" in result.stdout
    assert "Command: `python scripts/bench_feature_store.py" in record.read_text()


def test_ranker_benchmark_command_compares_cpu_precisions_through_triton(
    tmp_path: Path,
) -> None:
    """The done-when figure's command, tiny: two CPU precisions through real Triton, one
    run, the ratio column against fp32, and the table appended to a doc in a new folder."""
    doc = tmp_path / "new" / "bench.md"
    result = _run(
        [
            "scripts/bench_ranker.py",
            "--random-weights",
            "--skip-local",
            "--precisions",
            "fp32",
            "openvino_fp32",
            "--batch-sizes",
            "4",
            "--seq-len",
            "16",
            "--iters",
            "2",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--doc",
            str(doc),
        ],
        timeout=240,
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| Triton gRPC")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| Triton gRPC (cpu fp32)",
        "| Triton gRPC (cpu openvino_fp32)",
    ]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:3] == ["4", "16"]  # batch, tokens
        assert float(cells[3]) > 0  # pairs/s
        assert cells[-1].endswith("x")
    assert rows[0].rstrip(" |").endswith("1.00x")  # fp32 is the reference
    recorded = doc.read_text()
    assert "Command: `python scripts/bench_ranker.py --random-weights" in recorded
    assert rows[1] in recorded


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    with running_stack(tmp_path_factory.mktemp("bench-stack")) as (layout, _):
        yield layout


def test_load_benchmark_command_against_a_running_stack(
    local_stack: Layout, tmp_path: Path
) -> None:
    """The three runs answer every request; the in-process one builds the six services
    through their composition roots from the stack's settings and calls their servicers."""
    out, record = tmp_path / "runs" / "load.json", tmp_path / "bench.md"  # --json makes its folder
    requests = 4
    result = _run(
        [
            "scripts/load_bench.py",
            "--var",
            str(local_stack.var),
            "--base-port",
            str(local_stack.base_port),
            "--triton-grpc-port",
            str(local_stack.triton_grpc_port),
            "--ranker-backend",
            local_stack.ranker_backend,
            "--candidates",
            str(local_stack.candidate_count),
            "--deadline-s",
            str(local_stack.default_deadline_s),
            "--requests",
            str(requests),
            "--concurrency",
            "2",
            "--rate",
            "2",
            "--max-seconds",
            "60",
            "--users",
            str(N_USERS),
            "--json",
            str(out),
            "--record",
            str(record),
        ],
        timeout=180,
    )
    report = json.loads(out.read_text())
    runs = {r["run"]: r for r in report["rows"]}
    assert set(runs) == {"gRPC closed loop", "gRPC open loop", "in-process closed loop"}
    for row in runs.values():
        assert row["ok"] == requests, row
        assert row["errors"] == 0, row
        # With the stack's generous test deadline nothing may fall back: a degraded stage
        # here means a service answered with an error (in-process: a wiring fault).
        assert row["degraded"] == 0, row
        assert 0 < row["p50"] <= row["p95"] <= row["p99"]
    assert report["p50_ratio"] > 0
    assert report["rps_ratio"] > 0
    # Each of the stack's six processes is found by its port and measured; the orchestrator
    # and the store do work for every Recommend.
    cpu = report["grpc_cpu_ms"]
    assert set(cpu) == {
        "privacy_gateway",
        "feature_store",
        "retrieval",
        "ranker",
        "reranker",
        "orchestrator",
    }
    assert cpu["orchestrator"] > 0
    assert cpu["feature_store"] > 0
    assert report["in_process_cpu_ms"] > 0
    assert "CPU ms per Recommend by stack process" in result.stdout
    # The per-stage table comes from the services' own trace files.
    assert "retrieval: /acme.recsys.v1.RetrievalService/RetrieveCandidates" in result.stdout
    recorded = record.read_text()
    assert "Command: `python scripts/load_bench.py --var" in recorded
    assert f"ranker backend {local_stack.ranker_backend}, N=" in recorded
    assert "| in-process closed loop | 4 | 0 |" in recorded
    assert "gRPC/in-process p50 latency ratio" in recorded
