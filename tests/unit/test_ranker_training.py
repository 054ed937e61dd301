"""Fine-tuning: listwise examples from baskets, determinism by seed, resumable checkpoints."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from offline.ranker.candidates import CooccurrenceCandidates
from offline.ranker.training import CHECKPOINT_FILE, TrainConfig, build_examples, train
from shared.data import synthetic, temporal_split
from shared.data.types import Dataset

TINY = TrainConfig(
    steps=2,
    groups_per_step=1,
    negatives=2,
    candidates=10,
    max_length=16,
    checkpoint_every=1,
    seed=4,
    trainable_layers=2,
    history_candidates=0,
)


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, CooccurrenceCandidates, list]:  # type: ignore[type-arg]
    torch.set_num_threads(1)
    dataset = synthetic.generate(n_items=120, n_users=80, sessions_per_user=8, seed=2)
    train_split, _ = temporal_split(dataset)
    return dataset, CooccurrenceCandidates(train_split), train_split


def test_examples_put_an_unseen_next_item_first_and_are_seeded(data) -> None:  # type: ignore[no-untyped-def]
    dataset, source, train_split = data
    a = build_examples(dataset, train_split, source, TINY, random.Random(1))
    b = build_examples(dataset, train_split, source, TINY, random.Random(1))
    assert a
    assert a == b
    titles = {it.title.lower() for it in dataset.items.values()}
    for ex in a:
        assert len(ex.items) == 1 + TINY.negatives
        assert len(set(ex.items)) == len(ex.items)
        assert ex.items[0].split(" | ")[0] in titles
        assert ex.context.startswith("recent: ")


def test_resumed_run_ends_where_an_uninterrupted_one_does(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, source, train_split = data
    whole, _, stats = train(
        dataset, train_split, source, TINY, checkpoint_dir=tmp_path / "a", progress=False
    )
    assert stats["steps"] == 2
    assert stats["resumed_from_step"] == 0
    train(
        dataset,
        train_split,
        source,
        TINY,
        checkpoint_dir=tmp_path / "b",
        until_step=1,
        progress=False,
    )
    assert torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=False)["step"] == 1
    resumed, _, stats = train(
        dataset,
        train_split,
        source,
        TINY,
        checkpoint_dir=tmp_path / "b",
        resume=True,
        progress=False,
    )
    assert stats["resumed_from_step"] == 1
    with pytest.raises(ValueError, match="other settings"):
        train(
            dataset,
            train_split,
            source,
            replace(TINY, lr=1e-3),
            checkpoint_dir=tmp_path / "b",
            resume=True,
            progress=False,
        )
    for (name, p), q in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
    moved = whole.head.weight.detach()
    fresh = torch.nn.Linear(moved.shape[1], 1)
    assert not torch.equal(moved, fresh.weight)


def test_no_examples_is_a_clear_error(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, _, train_split = data
    # One basket per shopper: no shopper has a history before a next basket.
    first = {}
    for x in train_split:
        first.setdefault(x.user_id, x)
    train_split = list(first.values())
    with pytest.raises(ValueError, match="no training examples"):
        train(
            dataset,
            train_split,
            CooccurrenceCandidates(train_split),
            TINY,
            checkpoint_dir=tmp_path,
            progress=False,
        )


def test_positives_must_be_in_the_candidate_list_unless_told_otherwise() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.data.types import CatalogItem, Interaction

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    items = {i: CatalogItem(i, f"THING {i.upper()}", ("home",), 2.0) for i in "abcd"}
    log = [
        Interaction("u1", "a", t0),
        Interaction("u1", "b", t0 + timedelta(days=1)),
        *(Interaction(u, i, t0) for u in ("u2", "u3") for i in "acd"),
    ]
    dataset = Dataset("toy", items, log)
    source = CooccurrenceCandidates(log)
    assert source.candidates(["a"], 2) == ["c", "d"]  # b never co-occurs with a
    strict = replace(TINY, candidates=2, negatives=2)
    assert build_examples(dataset, log, source, strict, random.Random(0)) == []
    loose = replace(strict, positives_in_candidates=False)
    [example] = build_examples(dataset, log, source, loose, random.Random(0))
    assert example.items[0].startswith("thing b")
    assert {t.split(" | ")[0] for t in example.items[1:]} == {"thing c", "thing d"}


def test_own_items_join_the_lists_and_a_repeat_purchase_becomes_a_positive() -> None:
    from datetime import UTC, datetime, timedelta

    from offline.ranker.training import with_history
    from shared.data.types import CatalogItem, Interaction

    assert with_history(["c", "d"], ["a", "c", "b"], 2) == ["c", "d", "a", "b"]
    assert with_history(["c", "d"], ["a", "b"], 0) == ["c", "d"]
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    items = {i: CatalogItem(i, f"THING {i.upper()}", ("home",), 2.0) for i in "abcde"}
    log = [
        Interaction("u1", "a", t0),
        Interaction("u1", "e", t0),
        Interaction("u1", "a", t0 + timedelta(days=1)),  # a repeat, the only next item
        *(Interaction(u, i, t0) for u in ("u2", "u3") for i in "acd"),
    ]
    dataset = Dataset("toy", items, log)
    source = CooccurrenceCandidates(log)
    fresh_only = replace(TINY, candidates=2, negatives=2)
    assert build_examples(dataset, log, source, fresh_only, random.Random(0)) == []
    with_own = replace(fresh_only, history_candidates=5)
    [example] = build_examples(dataset, log, source, with_own, random.Random(0))
    assert example.items[0].startswith("thing a")  # the repeat is the positive
    negatives = {t.split(" | ")[0] for t in example.items[1:]}
    assert "thing a" not in negatives
    assert len(negatives) == 2


def test_the_learning_curve_scores_checkpoints_of_one_schedule_on_validation(
    data, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from offline.ranker.training import curve_table, learning_curve

    dataset, _, train_split = data
    config = replace(TINY, steps=3, eval_users=12, eval_candidates=8, history_candidates=4)
    points = learning_curve(dataset, train_split, config, [1, 3], root=tmp_path, progress=False)
    assert [p["step"] for p in points] == [1, 3]
    for p in points:
        assert 0 < p["users"] <= 12
        assert p["history_candidates"] == 4
        assert {"source", "popularity", "bert", "own_first"} <= p.keys()
        for order in ("source", "popularity", "bert", "own_first"):
            assert 0.0 <= p[order]["ndcg@10"] <= 1.0
    # The popularity and source orders are the model's baselines: the same at every step.
    assert points[0]["source"] == points[1]["source"]
    assert points[0]["own_first"] == points[1]["own_first"]
    # Resumed between points: the schedule's checkpoint reached the last step.
    [ckpt] = (tmp_path / "_checkpoints").glob(f"*curve*h4*/{CHECKPOINT_FILE}")
    assert torch.load(ckpt, weights_only=False)["step"] == 3
    table = curve_table(points)
    assert table.count("\n") == 3
    assert "| top 2 | cooccurrence | 4 | cooccurrence | 4 | 3 |" in table
    with pytest.raises(ValueError, match="end at the schedule"):
        learning_curve(dataset, train_split, config, [1, 2], root=tmp_path, progress=False)


def test_the_curve_compares_negatives_on_the_same_lists(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from offline.ranker.training import curve_table, learning_curve

    dataset, _, train_split = data
    config = replace(TINY, steps=1, eval_users=10, eval_candidates=8, history_candidates=2)
    both = ("cooccurrence", "retrieval")
    # Negatives from a two-tower model trained in the run on the early part only.
    two_tower = learning_curve(
        dataset,
        train_split,
        config,
        [1],
        root=tmp_path,
        negatives="retrieval",
        lists=both,
        progress=False,
    )
    assert [(p["negatives"], p["candidate_source"]) for p in two_tower] == [
        ("retrieval", "cooccurrence"),
        ("retrieval", "retrieval"),
    ]
    basket = learning_curve(dataset, train_split, config, [1], root=tmp_path, progress=False)
    # The same co-occurrence lists whatever the negatives: their baselines are equal.
    assert basket[0]["source"] == two_tower[0]["source"]
    assert basket[0]["own_first"] == two_tower[0]["own_first"]
    # Each recipe keeps its own checkpoint.
    assert len(list((tmp_path / "_checkpoints").glob(f"*curve*/{CHECKPOINT_FILE}"))) == 2
    assert "| top 2 | retrieval | 2 | retrieval | 2 | 1 |" in curve_table(two_tower)
    with pytest.raises(ValueError, match="curve candidate sources"):
        learning_curve(
            dataset, train_split, config, [1], root=tmp_path, negatives="popular", progress=False
        )
    with pytest.raises(ValueError, match="curve candidate sources"):
        learning_curve(dataset, train_split, config, [1], root=tmp_path, lists=(), progress=False)


def test_the_curve_command_writes_its_json_into_a_new_folder(tmp_path: Path) -> None:
    import json

    from offline.ranker.training import main
    from shared.data.format import write_folder

    shop = write_folder(
        synthetic.generate(n_items=120, n_users=80, sessions_per_user=8, seed=2), tmp_path / "shop"
    )
    base = ["--data", str(shop), "--quick", "--output", str(tmp_path / "models")]
    base += ["--threads", "1", "--no-progress"]
    # Without --curve there is no curve to write: refused before any training.
    with pytest.raises(SystemExit, match="--curve-json needs --curve"):
        main([*base, "--curve-json", str(tmp_path / "c.json")])
    out = tmp_path / "not" / "yet" / "curve.json"
    assert main([*base, "--curve", "2", "--eval-users", "6", "--curve-json", str(out)]) == 0
    [point] = json.loads(out.read_text())
    assert point["step"] == 2
    assert 0.0 <= point["bert"]["ndcg@10"] <= 1.0
