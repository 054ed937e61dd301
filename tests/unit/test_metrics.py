import math

import numpy as np
import pytest

from shared import metrics


def test_ndcg_matches_hand_computation() -> None:
    ranked = ["a", "b", "c", "d"]
    relevant = {"b", "d"}
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert metrics.ndcg_at_k(ranked, relevant, 4) == pytest.approx(dcg / idcg)
    assert metrics.ndcg_at_k(["b", "d"], relevant, 2) == pytest.approx(1.0)
    assert metrics.ndcg_at_k(["x"], relevant, 1) == 0.0


def test_precision_recall_hit_mrr() -> None:
    ranked = ["a", "b", "c"]
    relevant = {"c", "z"}
    assert metrics.precision_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranked, relevant, 3) == pytest.approx(1 / 2)
    assert metrics.hit_rate_at_k(ranked, relevant, 2) == 0.0
    assert metrics.hit_rate_at_k(ranked, relevant, 3) == 1.0
    assert metrics.mrr(ranked, relevant) == pytest.approx(1 / 3)


def test_ild_and_category_coverage_and_novelty() -> None:
    emb = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([2.0, 0.0])}
    # pairs: a-b distance 1, a-c 0, b-c 1 -> mean 2/3
    assert metrics.intra_list_diversity(["a", "b", "c"], emb) == pytest.approx(2 / 3)
    cats = {"a": "x", "b": "y", "c": "x"}
    assert metrics.category_coverage(["a", "b", "c"], cats, 3) == pytest.approx(2 / 3)
    assert metrics.category_coverage(["a", "b", "c"], cats, 3, available=2) == pytest.approx(1.0)
    assert metrics.novelty(["a", "b"], {"a": 0.5, "b": 0.25}, 2) == pytest.approx(1.5)
    assert metrics.item_coverage([["a"], ["a", "b"]], 4) == pytest.approx(0.5)


def test_evaluate_lists_averages_over_users_with_truth() -> None:
    out = metrics.evaluate_lists(
        {"u1": ["a"], "u2": ["b"]}, {"u1": {"a"}, "u2": {"c"}, "u3": set()}, ks=(1,)
    )
    assert out["hit_rate@1"] == pytest.approx(0.5)
    assert out["users"] == 2
    with pytest.raises(ValueError, match="no user"):
        metrics.evaluate_lists({}, {"u": set()})


def test_near_duplicates_counts_pairs_sharing_a_leaf() -> None:
    paths = {
        "crayons-1": ("toys", "crafts", "crayons"),
        "crayons-2": ("toys", "crafts", "crayons"),
        "crayons-3": ("toys", "crafts", "crayons"),
        "paint-1": ("toys", "crafts", "paint set"),
        "paint-2": ("toys", "crafts", "paint set"),
        "kite": ("toys", "outdoor", "kite"),
        "mug-home": ("home", "mug"),
        "mug-gift": ("gifts", "mug"),
        "bare": (),
    }
    demo = ["crayons-1", "paint-1", "crayons-2", "kite", "crayons-3", "paint-2", "bare"]
    # Three crayons make three pairs, two paint sets one; the kite and "bare" pair with nothing.
    assert metrics.near_duplicates(demo, paths) == 4
    assert metrics.near_duplicates(demo, paths, k=3) == 1
    assert metrics.near_duplicates(["mug-home", "mug-gift", "unknown", "bare"], paths) == 0
    # A label is a one-level path; an empty one is no category.
    labels = {"a": "x", "b": "x", "c": "", "d": ""}
    assert metrics.near_duplicates(["a", "b", "c", "d"], labels) == 1
    assert metrics.near_duplicates([], paths) == 0
