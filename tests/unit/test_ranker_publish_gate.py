"""The cross-encoder's publish gate (offline.ranker.gate on offline.evaluation.champion): a
fine-tuned version moves LATEST only when it does not order the evaluation lists worse than the
version LATEST names; the training command's refusal, ``--no-gate`` and ``--promote``. Real
fine-tuning, MiniLM scoring and bootstrap throughout."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from offline.evaluation.champion import compare, why_not_comparable
from offline.ranker.gate import METRIC, champion_gate
from offline.ranker.training import QUICK, TrainConfig, held_out, main
from shared.data import Dataset, synthetic, temporal_split
from shared.data.format import load_folder, write_folder

STEPS = ["--steps", "2", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = synthetic.generate(n_items=120, n_users=80, sessions_per_user=8, seed=2)
    return write_folder(data, tmp_path_factory.mktemp("gate") / "shop")


@pytest.fixture(scope="module")
def published(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model root whose LATEST names version ``first``, trained by the command."""
    root = tmp_path_factory.mktemp("gate") / "models"
    assert (
        main(["--data", str(shop), "--quick", "--output", str(root), "--version", "first", *STEPS])
        == 0
    )
    return root


def _read(shop: Path) -> Dataset:
    return load_folder(shop)[0]


def _train(shop: Path, root: Path, version: str, *extra: str) -> int:
    argv = ["--data", str(shop), "--quick", "--output", str(root), "--version", version]
    return main([*argv, *STEPS, *extra])


def _latest(root: Path) -> str:
    return (root / "LATEST").read_text().strip()


def _meta(root: Path, version: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((root / version / "meta.json").read_text())
    return meta


def _copy_root(published: Path, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(published, root, ignore=shutil.ignore_patterns("_checkpoints"))
    return root


def test_the_first_version_publishes_and_records_its_training_end(
    shop: Path, published: Path
) -> None:
    assert _latest(published) == "first"
    meta = _meta(published, "first")
    assert meta["publish_gate"] == {
        "passed": True,
        "compared": False,
        "reason": "no version is published yet",
        "champion": None,
        "metric": METRIC,
        "shoppers": 0,
        "challenger": None,
        "champion_value": None,
    }
    train_split, test_split = temporal_split(_read(shop))
    until = datetime.fromisoformat(meta["training"]["until"])
    assert until == max(x.timestamp for x in train_split)
    assert until < min(x.timestamp for x in test_split)


def test_the_same_recipe_retrained_is_compared_and_passes(
    shop: Path, published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_root(published, tmp_path)
    capsys.readouterr()
    assert _train(shop, root, "second") == 0
    assert _latest(root) == "second"
    gate = _meta(root, "second")["publish_gate"]
    assert gate["passed"] is True
    assert gate["compared"] is True
    assert gate["champion"] == "first"
    # Every evaluation shopper of the run, each order scored by its own model.
    assert gate["shoppers"] == _meta(root, "second")["metrics"]["users"] > 0
    assert gate["challenger"] == pytest.approx(_meta(root, "second")["metrics"]["bert"]["ndcg@10"])
    # One seed, one recipe, one thread: the same weights, the same order, no difference.
    assert gate["champion_value"] == pytest.approx(gate["challenger"])
    assert gate["difference"]["low"] <= 0.0 <= gate["difference"]["high"]
    out = capsys.readouterr().out
    assert "publish gate: ndcg@10" in out
    assert "not worse than the published version" in out


def test_an_order_worse_than_the_champions_is_refused(shop: Path, published: Path) -> None:
    dataset = _read(shop)
    train_split, test_split = temporal_split(dataset)
    config = TrainConfig(**{**QUICK, "eval_users": 40})
    history, truth = held_out(train_split, test_split, config)
    assert len(truth) >= 30
    # Each shopper's bought items among 20 others, the challenger putting them last: no
    # order of these lists scores lower, and the champion's ranks some of them in its top 10.
    others = sorted(dataset.items)
    candidates = {
        u: [*sorted(t), *[i for i in others if i not in t][:20]] for u, t in truth.items()
    }
    worst = {u: [*c[len(truth[u]) :], *c[: len(truth[u])]] for u, c in candidates.items()}
    start = min(x.timestamp for x in test_split)
    result = champion_gate(
        published, dataset, history, truth, candidates, worst, start, progress=False
    )
    assert result.compared
    assert not result.passed
    assert result.champion == "first"
    assert result.shoppers == len(truth)
    assert result.difference is not None
    assert result.difference.high < 0
    assert result.challenger_value is not None
    assert result.champion_value is not None
    assert result.challenger_value < result.champion_value
    assert "LATEST stays" in result.reason


def test_a_refused_version_is_kept_and_promote_serves_it(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from offline.ranker.training import _report

    root = _copy_root(published, tmp_path)
    shutil.copytree(root / "first", root / "second")
    meta = _meta(root, "second")
    rng = np.random.default_rng(0)
    champion = rng.uniform(0.2, 0.6, 50)
    refused = compare(champion - 0.1, champion, "first", METRIC)
    assert not refused.passed
    meta["version"] = "second"
    meta["publish_gate"] = refused.record()
    (root / "second" / "meta.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert _report(root / "second", str(root)) == 3
    captured = capsys.readouterr()
    assert "LATEST stays" in captured.out
    assert f"--promote second --output {root}" in captured.err
    assert _latest(root) == "first"
    assert main(["--promote", "second", "--output", str(root)]) == 0
    assert _latest(root) == "second"
    # Nothing to promote: a clear error, LATEST untouched.
    assert main(["--promote", "third", "--output", str(root)]) == 2
    assert main(["--promote", "../first", "--output", str(root)]) == 2
    err = capsys.readouterr().err
    assert "no cross-encoder version 'third'" in err
    assert "invalid cross-encoder version '../first'" in err
    assert _latest(root) == "second"


def test_no_gate_moves_latest_without_comparing(
    shop: Path, published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy_root(published, tmp_path)
    capsys.readouterr()
    assert _train(shop, root, "forced", "--no-gate") == 0
    assert _latest(root) == "forced"
    assert "publish_gate" not in _meta(root, "forced")
    assert "LATEST moved (--no-gate)" in capsys.readouterr().out


def test_a_bad_or_taken_version_name_is_refused_before_training(
    shop: Path, published: Path, tmp_path: Path
) -> None:
    root = _copy_root(published, tmp_path)
    before = (root / "first" / "meta.json").read_text()
    with pytest.raises(SystemExit, match="already exists"):
        _train(shop, root, "first")
    with pytest.raises(SystemExit, match="invalid --version"):
        _train(shop, root, "a/b")
    assert (root / "first" / "meta.json").read_text() == before
    assert not (root / "_checkpoints").exists()


def test_a_champion_from_elsewhere_or_before_the_gate_is_not_compared(
    shop: Path, published: Path, tmp_path: Path
) -> None:
    dataset = _read(shop)
    train_split, test_split = temporal_split(dataset)
    history, truth = held_out(train_split, test_split, TrainConfig(**QUICK))
    lists = {u: sorted(dataset.items)[:10] for u in truth}
    start = min(x.timestamp for x in test_split)

    def gate(data: Dataset, root: Path = published) -> str:
        result = champion_gate(root, data, history, truth, lists, lists, start, progress=False)
        assert result.passed
        assert not result.compared
        return result.reason

    assert "trained on" in gate(replace(dataset, name="another-shop"))
    assert gate(dataset, tmp_path / "empty") == "no version is published yet"
    root = _copy_root(published, tmp_path)
    (root / "LATEST").write_text("gone\n")
    assert "cannot be read" in gate(dataset, root)


def test_why_not_comparable_reads_the_champions_training_period() -> None:
    start = datetime(2011, 10, 1)
    ok = {"dataset": "shop", "training": {"until": "2011-09-30T23:00:00"}}
    assert why_not_comparable("v1", ok, "shop", start) is None
    assert "not comparable" in str(why_not_comparable("v1", ok, "other", start))
    assert "records no training period" in str(
        why_not_comparable("v1", {"dataset": "shop"}, "shop", start)
    )
    late = {"dataset": "shop", "training": {"until": "2011-10-02T00:00:00"}}
    assert "would leak" in str(why_not_comparable("v1", late, "shop", start))
    bad = {"dataset": "shop", "training": {"until": "yesterday"}}
    assert "unreadable training end" in str(why_not_comparable("v1", bad, "shop", start))


def test_a_tie_passes_and_a_clear_loss_does_not() -> None:
    rng = np.random.default_rng(1)
    old = rng.uniform(0.0, 1.0, 200)
    tie = compare(old + rng.normal(0.0, 0.05, 200), old, "v1", METRIC)
    assert tie.passed
    assert tie.difference is not None
    assert tie.difference.low < 0 < tie.difference.high
    loss = compare(old - 0.05 + rng.normal(0.0, 0.05, 200), old, "v1", METRIC)
    assert not loss.passed
    assert loss.record()["difference"]["high"] < 0
    with pytest.raises(ValueError, match="equal shapes"):
        compare(old[:10], old, "v1", METRIC)
