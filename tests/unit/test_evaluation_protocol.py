"""The validation cut of offline.evaluation.protocol never sees the test period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from offline.evaluation.pipeline import figure_path
from offline.evaluation.protocol import (
    holdout_cut,
    per_user,
    sample,
    validation_cut,
    window_cut,
)
from shared.data import synthetic
from shared.data.types import Dataset, Interaction


def _log() -> Dataset:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    xs = [
        Interaction(f"u{u}", f"i{(u * 7 + d) % 13}", t0 + timedelta(days=d, hours=u))
        for d in range(50)
        for u in range(6)
        if (u + d) % 3
    ]
    return Dataset("toy", {}, xs)


def test_the_validation_cut_lies_inside_the_training_period() -> None:
    data = synthetic.generate(n_items=120, n_users=40)
    test = holdout_cut(data)
    valid = validation_cut(test.before)
    assert valid.before
    assert valid.after
    # Fit, validation, test in this time order; nothing of the test period leaks backwards.
    assert max(x.timestamp for x in valid.before) < min(x.timestamp for x in valid.after)
    assert max(x.timestamp for x in valid.after) < min(x.timestamp for x in test.after)
    assert sorted(valid.before + valid.after, key=id) == sorted(test.before, key=id)
    # About 80% of the training interactions fit, 20% validate (ties at the cut go after).
    share = len(valid.before) / len(test.before)
    assert 0.7 < share <= 0.8
    for user in valid.users:
        assert valid.histories[user]
        assert valid.truth[user]
    fit_items = {x.item_id for x in valid.before}
    assert {i for u in valid.users for i in valid.histories[u]} <= fit_items


def test_an_earlier_cut_is_scored_on_a_window_as_long_as_the_validation_cut() -> None:
    train = holdout_cut(synthetic.generate(n_items=120, n_users=40)).before
    ordered = sorted(train, key=lambda x: x.timestamp)
    valid = validation_cut(train)
    early = window_cut(train, 0.6)
    start = ordered[int(len(ordered) * 0.6)].timestamp
    stop = ordered[int(len(ordered) * 0.8)].timestamp
    assert early.before
    assert early.users
    assert max(x.timestamp for x in early.before) < start
    # The truth is the next 20% of the log only: it ends where the validation window starts.
    assert all(start <= x.timestamp < stop for x in early.after)
    assert max(x.timestamp for x in early.after) < min(x.timestamp for x in valid.after)
    for user in early.users:
        assert early.truth[user] == {x.item_id for x in early.after if x.user_id == user}
        assert early.histories[user][0] in {x.item_id for x in early.before if x.user_id == user}
    # A window reaching the end of the log is the validation cut itself.
    assert window_cut(train, 0.8).truth == valid.truth
    with pytest.raises(ValueError, match="quantile"):
        window_cut(train, 1.0)


def test_histories_are_most_recent_first_and_truth_counts_repeats() -> None:
    data = _log()
    c = holdout_cut(data, 0.5)
    for user in c.users:
        own = [x for x in c.before if x.user_id == user]
        assert c.histories[user][0] == own[-1].item_id
        after = {x.item_id for x in c.after if x.user_id == user}
        assert c.truth[user] == after  # items also bought before the cut stay in the truth


def test_an_empty_training_period_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        validation_cut([])


def test_sample_is_everyone_by_default_and_seeded_otherwise() -> None:
    users = [f"u{i}" for i in range(20)]
    assert sample(users, 0, seed=0) == sorted(users)
    assert sample(users, 50, seed=0) == sorted(users)
    five = sample(users, 5, seed=1)
    assert len(five) == 5
    assert five == sorted(five)
    assert set(five) <= set(users)
    assert five == sample(users, 5, seed=1)
    assert five != sample(users, 5, seed=2)


def test_per_user_scores_follow_the_user_order() -> None:
    truth = {"a": {"x"}, "b": {"y"}}
    lists = {"a": ["x", "z"], "b": ["z", "q"]}
    assert per_user(lists, truth, ["b", "a"], k=2).tolist() == [0.0, 1.0]


def test_only_a_recorded_run_or_an_explicit_path_gets_a_figure(tmp_path: Path) -> None:
    # An exploratory rerun must not overwrite the figure the docs show for a recorded run.
    assert figure_path(None, None, tmp_path, "online-retail") is None
    recorded = figure_path(None, tmp_path / "docs" / "evaluation.md", tmp_path, "online-retail")
    assert recorded == tmp_path / "docs" / "figures" / "evaluation_online-retail.png"
    asked = tmp_path / "mine.png"
    assert figure_path(asked, None, tmp_path, "online-retail") == asked
    assert figure_path(asked, tmp_path / "docs" / "evaluation.md", tmp_path, "x") == asked


def test_a_report_file_in_a_new_folder_is_prepared_before_the_run(tmp_path: Path) -> None:
    """The privacy-utility command makes its doc's folder first: a missing folder does not
    cost the run, and a bad data path is refused before anything is computed."""
    from offline.evaluation.privacy_utility import main

    doc = tmp_path / "new" / "privacy.md"
    with pytest.raises(SystemExit):
        main(["--write-doc", str(doc), "--data", str(tmp_path / "no-such-folder")])
    assert doc.parent.is_dir()
    assert not doc.exists()
