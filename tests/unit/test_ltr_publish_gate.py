"""The learned ranking model's publish gate (offline.ranker.ltr.publish_gate): a model that
orders its held-out candidates measurably worse than they arrived does not move LATEST; and
the trainer's ``--promote``. Real LightGBM fits and bootstrap intervals throughout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from offline.ranker import ltr
from offline.ranker.ltr import DEFAULT_PARAMS, Group, evaluate, fit, publish_gate
from services.ranker.learned import set_latest_ranking_model
from shared.ranking_features import FEATURES

FEATURE_LIST = [f for f in FEATURES if f != "bert_score_z"]
N = 30


def _group(user: int, relevant_at: int, decoys: range, decoy_count: float) -> Group:
    """One shopper's list: ranks and scores in list order; the relevant item at
    ``relevant_at`` and ``decoys`` carrying ``decoy_count`` own events."""
    x = np.zeros((N, len(FEATURES)))
    col = {f: i for i, f in enumerate(FEATURES)}
    x[:, col["retrieval_rank"]] = np.arange(N)
    x[:, col["retrieval_score_z"]] = np.linspace(1.5, -1.5, N)
    x[:, col["bert_score_z"]] = np.nan
    x[:, col["own_days_since_last"]] = np.nan
    x[list(decoys), col["own_event_count"]] = decoy_count
    ids = [f"u{user}-i{i}" for i in range(N)]
    labels = np.zeros(N, dtype=np.int32)
    labels[relevant_at] = 1
    return Group(f"u{user}", ids, x, labels, {ids[relevant_at]}, x[:, col["retrieval_score_z"]])


def test_a_model_worse_than_its_candidate_order_is_refused() -> None:
    # Fitted where the shopper's own items are what they buy next (and arrive last) ...
    fitting = [_group(u, N - 1, range(N - 1, N), 5.0) for u in range(300)]
    booster = fit(fitting, FEATURE_LIST, 50, DEFAULT_PARAMS)
    # ... and held out where the retrieval order is right and own items are decoys.
    held_out = [_group(1000 + u, 0, range(1, 6), 5.0) for u in range(80)]
    scores = evaluate(booster, held_out, FEATURE_LIST, 0.5)
    assert scores["ndcg@10"]["candidate_order"] == pytest.approx(1.0)
    assert scores["ndcg@10"]["ltr"] < 0.5
    gate = publish_gate(scores)
    assert gate["passed"] is False
    assert gate["difference"]["high"] < 0
    assert "LATEST stays" in gate["reason"]

    # Held out like the fitting shoppers: the model helps, and a tie or a gain passes.
    alike = [_group(2000 + u, N - 1, range(N - 1, N), 5.0) for u in range(80)]
    better = publish_gate(evaluate(booster, alike, FEATURE_LIST, 0.5))
    assert better["passed"] is True
    assert better["difference"]["low"] > 0


def test_the_trainer_records_the_gate_and_promotes_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ltr"
    base = ["--data", "synthetic", "--output", str(root), "--users", "150"]
    assert ltr.main([*base, "--version", "first"]) == 0
    assert (root / "LATEST").read_text().strip() == "first"
    gate = json.loads((root / "first" / "meta.json").read_text())["publish_gate"]
    assert gate["passed"] is True
    assert gate["skipped"] is False
    assert gate["compared_with"] == "candidate_order"
    assert gate["difference"]["low"] <= gate["difference"]["mean"] <= gate["difference"]["high"]
    assert "publish gate: NDCG@10 minus the candidate order" in capsys.readouterr().out

    assert ltr.main([*base, "--version", "second", "--no-gate"]) == 0
    assert (root / "LATEST").read_text().strip() == "second"
    assert json.loads((root / "second" / "meta.json").read_text())["publish_gate"]["skipped"]
    capsys.readouterr()

    assert ltr.main(["--promote", "nope", "--output", str(root)]) == 2
    assert "no ranking model version 'nope'" in capsys.readouterr().err
    assert ltr.main(["--promote", "first", "--output", str(root)]) == 0  # roll back
    assert (root / "LATEST").read_text().strip() == "first"
    with pytest.raises(ValueError, match="invalid ranking model version"):
        set_latest_ranking_model(root, "../first")
