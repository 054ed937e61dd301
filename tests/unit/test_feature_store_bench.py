"""The feature store benchmark harness on a tiny synthetic dataset: every figure is measured
for real (store calls and the gRPC server built by ``build_feature_store``), and the table and
the record have the shape the docs rely on."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import feature_store

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_one_run_measures_every_role_and_records_a_table(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    postgres_url = str(request.getfixturevalue("postgres_url")) if backend == "postgresql" else ""
    (result,) = feature_store.run(
        backends=[backend], sizes=[20], repeats=3, postgres_url=postgres_url
    )
    assert (result.backend, result.users) == (backend, 20)
    assert result.events > 0
    figures = [
        result.seed_events_per_s,
        result.ingest_events_per_s,
        result.bounded_counts_ms,
        *(
            value
            for spread in (
                result.user_features,
                result.item_features,
                result.item_features_grpc,
                result.ingest_one,
            )
            for value in (spread.p50, spread.p95)
        ),
    ]
    assert all(math.isfinite(v) and v > 0 for v in figures)
    assert result.user_features.p50 <= result.user_features.p95

    table = feature_store.markdown([result])
    assert table.splitlines()[2].startswith(f"| {backend} | 20 | {result.events:,} |")
    doc = tmp_path / "bench.md"
    doc.write_text("# figures\n")
    feature_store.record(
        doc, table, command="python scripts/bench_feature_store.py", dataset="synthetic"
    )
    text = doc.read_text()
    assert text.startswith("# figures\n\n### Feature store scale (")
    assert "Command: `python scripts/bench_feature_store.py`; dataset: synthetic generator." in text
    assert text.rstrip().endswith(table.splitlines()[-1])


def test_unknown_backend_is_refused_before_any_work() -> None:
    with (
        pytest.raises(ValueError, match="unknown backend 'mysql'"),
        feature_store.fresh_database("mysql", ""),
    ):
        pass


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "sqlite,mysql"], "unknown backend(s) mysql"),
        (["--sizes", "10,x"], "--sizes must be comma-separated integers"),
        (["--sizes", "0"], "--sizes must be at least 1"),
        (["--repeats", "0"], "--repeats must be at least 1"),
    ],
)
def test_entry_point_rejects_bad_arguments(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/bench_feature_store.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
