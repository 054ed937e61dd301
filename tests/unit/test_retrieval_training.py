"""Two-tower training on a small synthetic dataset with the real MiniLM title embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offline.retrieval.evaluation import evaluate_retrieval
from offline.retrieval.publish import train_and_publish
from offline.retrieval.text import title_embeddings
from offline.retrieval.training import TrainConfig, train
from services.retrieval.index import build_index
from shared.artefacts.retrieval import LATEST, RetrievalArtefact, load_artefact
from shared.data import Dataset, synthetic, temporal_split

CONFIG = TrainConfig(dim=32, epochs=4, batch_size=128)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return synthetic.generate(n_items=300, n_users=200, sessions_per_user=6.0, seed=3)


@pytest.fixture(scope="module")
def titles(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Real all-MiniLM-L6-v2 embeddings of the catalog titles, in sorted item id order."""
    import torch

    torch.set_num_threads(1)
    ids = sorted(dataset.items)
    return title_embeddings(
        [dataset.items[i].title for i in ids], cache_dir=tmp_path_factory.mktemp("titles")
    )


@pytest.fixture(scope="module")
def trained(dataset: Dataset, titles: np.ndarray) -> RetrievalArtefact:
    train_part, _ = temporal_split(dataset)
    return train(train_part, dataset.items, CONFIG, seed=0, title_vectors=titles)


def _random_artefact(trained: RetrievalArtefact, seed: int) -> RetrievalArtefact:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal(trained.item_vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    dim = vectors.shape[1]
    return RetrievalArtefact(
        item_ids=trained.item_ids,
        item_vectors=vectors,
        user_weight=np.eye(dim, dtype=np.float32),
        user_bias=np.zeros(dim, dtype=np.float32),
        recency_decay=trained.recency_decay,
        max_history=trained.max_history,
        popularity=trained.popularity,
    )


def test_training_beats_random_vectors(dataset: Dataset, trained: RetrievalArtefact) -> None:
    train_part, test_part = temporal_split(dataset)
    ours = evaluate_retrieval(trained, build_index(trained), train_part, test_part, ks=(20,))
    rand = _random_artefact(trained, seed=1)
    baseline = evaluate_retrieval(rand, build_index(rand), train_part, test_part, ks=(20,))
    assert ours["two_tower"]["recall@20"] > 1.5 * baseline["two_tower"]["recall@20"]
    assert ours["two_tower"]["recall@20"] > ours["popularity"]["recall@20"]
    losses = trained.meta["training"]["epoch_losses"]
    assert losses[-1] < losses[0]


def test_vectors_are_unit_float32_for_every_catalog_item(
    dataset: Dataset, trained: RetrievalArtefact
) -> None:
    assert trained.item_ids == sorted(dataset.items)
    assert trained.item_vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(trained.item_vectors, axis=1), 1.0, atol=1e-5)
    assert trained.meta["dimension"] == CONFIG.dim


def test_same_seed_same_artefact(dataset: Dataset, titles: np.ndarray) -> None:
    train_part, _ = temporal_split(dataset)
    small = TrainConfig(dim=16, epochs=1, batch_size=128)
    a = train(train_part, dataset.items, small, seed=5, title_vectors=titles)
    b = train(train_part, dataset.items, small, seed=5, title_vectors=titles)
    c = train(train_part, dataset.items, small, seed=6, title_vectors=titles)
    assert np.array_equal(a.item_vectors, b.item_vectors)
    assert np.array_equal(a.user_weight, b.user_weight)
    assert not np.array_equal(a.item_vectors, c.item_vectors)


def test_cold_items_are_retrievable_from_their_title(dataset: Dataset, titles: np.ndarray) -> None:
    """Items never seen in training still land next to warm items of the same product type."""
    ids = sorted(dataset.items)
    cold = set(ids[::10])
    train_part, _ = temporal_split(dataset)
    warm_part = [x for x in train_part if x.item_id not in cold]
    artefact = train(warm_part, dataset.items, CONFIG, seed=0, title_vectors=titles)
    assert all(artefact.popularity[artefact.row(i)] == 0 for i in cold)  # type: ignore[index]
    index = build_index(artefact)
    noun = {i: dataset.items[i].leaf_category for i in ids}
    percentiles = []
    for item in sorted(cold):
        same = [w for w in ids if w not in cold and noun[w] == noun[item]][:5]
        if not same:
            continue
        ranked = [i for i, _ in index.search(artefact.user_vector(same), len(ids), exclude=same)]
        percentiles.append(ranked.index(item) / len(ranked))
    assert len(percentiles) >= 20
    # Chance is 0.5; a cold item sits in the top tenth for a history of its own product type.
    assert float(np.mean(percentiles)) < 0.1


def test_title_embeddings_come_from_the_cache(tmp_path: Path) -> None:
    titles = ["RED MUG", "BLUE MUG", "RED MUG"]
    first = title_embeddings(titles, cache_dir=tmp_path)
    assert first.shape == (3, 384)
    assert np.array_equal(first[0], first[2])

    def no_encoder() -> None:
        raise AssertionError("the cache should have answered")

    again = title_embeddings(titles, cache_dir=tmp_path, encoder_factory=no_encoder)  # type: ignore[arg-type]
    assert np.array_equal(first, again)


def test_train_rejects_unusable_inputs(dataset: Dataset, titles: np.ndarray) -> None:
    with pytest.raises(ValueError, match="catalog is empty"):
        train([], {}, CONFIG, title_vectors=titles)
    with pytest.raises(ValueError, match="title vectors"):
        train(list(dataset.interactions), dataset.items, CONFIG, title_vectors=titles[:10])
    one_each = {x.user_id: x for x in dataset.interactions}
    with pytest.raises(ValueError, match="nothing to learn"):
        train(list(one_each.values()), dataset.items, CONFIG, title_vectors=titles)


def test_publish_writes_a_version_with_holdout_metrics(tmp_path: Path) -> None:
    small = synthetic.generate(n_items=120, n_users=80, seed=11)
    path = train_and_publish(small, tmp_path, TrainConfig(dim=16, epochs=1, batch_size=64), seed=0)
    assert (tmp_path / LATEST).read_text().strip() == path.name
    loaded = load_artefact(path)
    for name in ("item_ids.json", "item_vectors.npy", "meta.json", "user_tower.npz"):
        assert (path / name).is_file()
    metrics = loaded.meta["metrics"]
    assert set(metrics) >= {"two_tower", "popularity", "protocol"}
    assert 0.0 <= metrics["two_tower"]["recall@100"] <= 1.0
    assert loaded.meta["training"]["config"]["dim"] == 16
