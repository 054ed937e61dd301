"""The served path offline (offline.evaluation.served): the knee rule, and rolling training
cuts that never read past the log they are given."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest

from offline.evaluation.protocol import holdout_cut, validation_cut
from offline.evaluation.served import knee, train_path, validation_cuts
from offline.ranker.ltr import rolling_groups
from shared.data import synthetic
from shared.data.types import Dataset
from shared.ranking_features import FEATURES

ROWS = ["r + DPP(0.1)", "r + DPP(0.5)", "r + MMR(0.1)"]


def test_knee_takes_the_most_diverse_row_within_the_tolerance() -> None:
    ndcg = {"r": 0.100, "r + DPP(0.1)": 0.099, "r + DPP(0.5)": 0.096, "r + MMR(0.1)": 0.094}
    ild = {"r + DPP(0.1)": 0.70, "r + DPP(0.5)": 0.80, "r + MMR(0.1)": 0.90}
    # 5%: the floor is 0.095, MMR(0.1) (most diverse) is below it, DPP(0.5) is the knee.
    assert knee("r", ROWS, ndcg, ild, 0.05) == "r + DPP(0.5)"
    # 10%: every row qualifies, the most diverse wins.
    assert knee("r", ROWS, ndcg, ild, 0.10) == "r + MMR(0.1)"
    # 2%: only DPP(0.1) keeps NDCG@10 at 0.098 or more.
    assert knee("r", ROWS, ndcg, ild, 0.02) == "r + DPP(0.1)"


def test_knee_falls_back_to_the_ranking_when_diversity_costs_too_much() -> None:
    ndcg = {"r": 0.1, **{name: 0.05 for name in ROWS}}
    ild = {name: 0.9 for name in ROWS}
    assert knee("r", ROWS, ndcg, ild, 0.05) == "r"
    # A diversified row that is also more relevant is taken.
    assert knee("r", ROWS, {**ndcg, "r + DPP(0.5)": 0.2}, ild, 0.0) == "r + DPP(0.5)"


@pytest.fixture(scope="module")
def small() -> Dataset:
    return synthetic.generate(n_items=150, n_users=60, seed=3)


@pytest.mark.parametrize(("q", "window"), [(0.5, 0.2), (0.7, 0.5)])
def test_rolling_groups_label_each_cut_with_its_own_window_only(
    small: Dataset, q: float, window: float
) -> None:
    log = sorted(small.interactions, key=lambda x: x.timestamp)
    inside = log[: int(len(log) * 0.8)]
    messages: list[str] = []
    groups = rolling_groups(
        small, inside, 20, seed=0, cuts=(q,), window=window, progress=messages.append
    )
    assert groups
    assert any(m.startswith("  cut at") for m in messages)
    start = inside[int(len(inside) * q)].timestamp
    # A window reaching past the log ends with it: nothing after ``inside`` is read.
    stop = inside[int(len(inside) * (q + window))].timestamp if q + window < 1 else None
    for g in groups:
        own = [x for x in inside if x.user_id == g.user_id]
        assert g.truth == {
            x.item_id for x in own if x.timestamp >= start and (stop is None or x.timestamp < stop)
        }
        assert g.labels.sum() == len(set(g.item_ids) & g.truth)
        # Features are as of the cut: days since the last own event are never negative and
        # only items the shopper had before the cut count as own (the 20 most recent of them).
        before = {x.item_id for x in own if x.timestamp < start}
        counts = g.features[:, FEATURES.index("own_event_count")]
        assert all(i in before for c, i in zip(counts, g.item_ids, strict=True) if c > 0)
        days = g.features[:, FEATURES.index("own_days_since_last")]
        assert (days[~np.isnan(days)] >= 0).all()


def test_without_a_single_labelled_shopper_the_path_has_no_learned_model(small: Dataset) -> None:
    # Every shopper's events happen at one moment (their first): no shopper has events on both
    # sides of any rolling cut, so there is nothing to fit the ranking model on; the path
    # still serves.
    first: dict[str, datetime] = {}
    for x in sorted(small.interactions, key=lambda x: x.timestamp):
        first.setdefault(x.user_id, x.timestamp)
    log = sorted(
        (replace(x, timestamp=first[x.user_id]) for x in small.interactions),
        key=lambda x: x.timestamp,
    )
    messages: list[str] = []
    path = train_path(small, log, candidates=20, seed=0, ltr=True, progress=messages.append)
    assert path.booster is None
    assert any("no learned ranking model" in m for m in messages)
    assert path.popular


def test_validation_cuts_repeat_each_cut_once_per_training_seed(small: Dataset) -> None:
    held = holdout_cut(small)
    valid = validation_cut(held.before)
    one = validation_cuts(small, held, valid, valid.users, set(), (0.6,), seed=5)
    assert [(vc.label, vc.seed) for vc in one] == [("0.8", 5), ("0.6", 5)]
    both = validation_cuts(small, held, valid, valid.users, set(), (0.6,), model_seeds=(5, 6))
    assert [(vc.label, vc.seed) for vc in both] == [
        ("0.8 s5", 5),
        ("0.6 s5", 5),
        ("0.8 s6", 6),
        ("0.6 s6", 6),
    ]
    # The same cut with another seed: the same shoppers and truth, only the models differ.
    assert both[2].cut is both[0].cut
    assert both[2].users == both[0].users
    with pytest.raises(ValueError, match="must differ"):
        validation_cuts(small, held, valid, valid.users, set(), (), model_seeds=(1, 1))
