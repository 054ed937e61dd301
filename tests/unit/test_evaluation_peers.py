"""The reference recommenders of offline.evaluation.peers: the real implicit models on small
interaction logs with a known structure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from offline.evaluation.peers import (
    GRIDS,
    InteractionMatrix,
    make_peer,
    modes,
    tune,
)
from shared import metrics
from shared.data.types import Interaction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _x(user: str, item: str, minute: int) -> Interaction:
    return Interaction(user, item, T0 + timedelta(minutes=minute))


def _two_groups() -> list[Interaction]:
    """Shoppers g0..g9 buy from items a0..a9, h0..h9 from b0..b9; a0 and b0 are the most
    bought of each group, and each shopper has bought three items of their group."""
    xs = []
    minute = 0
    for group, items in (("g", "a"), ("h", "b")):
        for u in range(10):
            for j in (0, (u + 1) % 10, (u + 4) % 10):
                minute += 1
                xs.append(_x(f"{group}{u}", f"{items}{j}", minute))
    return xs


def test_matrix_counts_and_recency() -> None:
    xs = [_x("u", "a", 1), _x("u", "b", 2), _x("u", "a", 3), _x("v", "b", 4)]
    m = InteractionMatrix.build(xs)
    assert m.users == ("u", "v")
    assert m.items == ("a", "b")
    assert m.counts.toarray().tolist() == [[2.0, 1.0], [0.0, 1.0]]
    assert m.last.toarray().tolist() == [[3.0, 2.0], [0.0, 4.0]]
    assert m.popularity().tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="no interactions"):
        m.rows(["nobody"])


def test_repeat_baseline_orders_own_items_by_count_then_recency_then_popularity() -> None:
    xs = [
        _x("u", "old", 1),
        _x("u", "often", 2),
        _x("u", "often", 3),
        _x("u", "recent", 4),
        *[_x(f"p{i}", "hit", 10 + i) for i in range(5)],
        _x("p0", "second", 20),
        _x("p1", "second", 21),
    ]
    peer = make_peer("repeat").fit(InteractionMatrix.build(xs))
    assert peer.recommend(["u"], 5, exclude_history=False)["u"] == [
        "often",
        "recent",
        "old",
        "hit",
        "second",
    ]
    assert modes("repeat") == (False,)
    pop = make_peer("popularity").fit(InteractionMatrix.build(xs))
    assert pop.recommend(["u"], 3, exclude_history=False)["u"] == ["hit", "often", "second"]
    assert pop.recommend(["u"], 2, exclude_history=True)["u"] == ["hit", "second"]


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("als", {"factors": 4, "regularization": 0.01, "iterations": 20}),
        ("bpr", {"factors": 4, "learning_rate": 0.05, "iterations": 200}),
        ("item-knn", {"similarity": "cosine", "K": 5}),
        ("item-knn", {"similarity": "bm25", "K": 5}),
    ],
)
def test_implicit_peers_learn_the_group_structure(family: str, params: dict) -> None:
    m = InteractionMatrix.build(_two_groups())
    peer = make_peer(family, params, seed=0).fit(m)
    users = [f"g{u}" for u in range(10)] + [f"h{u}" for u in range(10)]
    for exclude in (False, True):
        lists = peer.recommend(users, 5, exclude_history=exclude)
        own_group = 0
        for user in users:
            ranked = lists[user]
            assert len(ranked) == len(set(ranked)) == 5
            history = {m.items[c] for c in m.counts[m.user_row[user]].indices}
            if exclude:
                assert not history & set(ranked), (user, ranked)
            own_group += sum(item[0] == ("a" if user[0] == "g" else "b") for item in ranked[:3])
        # Random lists would put half of the top 3 in the shopper's group.
        assert own_group >= 0.9 * 3 * len(users), (family, exclude, own_group)


def test_a_peer_list_is_completed_with_popularity() -> None:
    # kNN with K=1 knows one neighbour per item: far fewer than 15 candidates.
    m = InteractionMatrix.build(_two_groups())
    peer = make_peer("item-knn", {"similarity": "cosine", "K": 1}).fit(m)
    ranked = peer.recommend(["g0"], 15, exclude_history=True)["g0"]
    assert len(ranked) == len(set(ranked)) == 15


def test_tune_keeps_the_best_validation_point_per_mode() -> None:
    xs = _two_groups()
    # Each shopper's last item is held out.
    held = {x.user_id: x for x in xs}
    fit_on = InteractionMatrix.build([x for x in xs if held[x.user_id] is not x])
    truth = {u: {x.item_id} for u, x in held.items()}
    grid = [{"similarity": "cosine", "K": k} for k in (1, 3, 10)]
    best = tune("item-knn", grid, fit_on, truth, k=5)
    assert set(best) == {False, True}
    for exclude, tuned in best.items():
        assert [p for p, _ in tuned.tried] == grid
        assert tuned.score == max(s for _, s in tuned.tried)
        peer = make_peer("item-knn", tuned.params).fit(fit_on)
        lists = peer.recommend(sorted(truth), 5, exclude_history=exclude)
        again = np.mean([metrics.ndcg_at_k(lists[u], truth[u], 5) for u in sorted(truth)])
        assert tuned.score == pytest.approx(float(again))
    assert all(len(g) >= 6 for g in GRIDS.values())


def test_bad_peer_input_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        make_peer("svd")
    with pytest.raises(ValueError, match="similarity"):
        make_peer("item-knn", {"similarity": "jaccard"}).fit(InteractionMatrix.build(_two_groups()))
    with pytest.raises(ValueError, match="empty"):
        make_peer("popularity").fit(InteractionMatrix.build([]))
    with pytest.raises(RuntimeError, match="not fitted"):
        make_peer("popularity").recommend(["u"], 3, exclude_history=False)
