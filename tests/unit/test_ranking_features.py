"""The learned ranking model's feature builder: training and serving build the same matrix.

The parity test runs the serving path for real: events go into a feature store (SQLite), its
GetUserFeatures message goes through the orchestrator's conversions and its ScoreCandidates
request, and the ranker servicer reads the signals back; the training path computes them from
the same events with offline.ranker.ltr. Both feed shared.ranking_features.build_features.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from offline.ranker import ltr
from services.feature_store.servicer import user_features_to_proto
from services.feature_store.store import AggregateKind, Event, FeatureStore, Item
from services.orchestrator import clients
from services.orchestrator.domain import ItemFeatures
from services.orchestrator.pipeline import shopper_context
from services.ranker.learned import (
    RankingModel,
    load_ranking_model,
    save_ranking_model,
)
from services.ranker.servicer import candidate_signals, shopper_signals
from shared.data.types import CatalogItem, Interaction
from shared.gen.acme.recsys.v1 import feature_store_pb2
from shared.ranking_features import (
    FEATURE_SET_VERSION,
    FEATURES,
    CandidateSignals,
    OwnInteraction,
    ShopperSignals,
    build_features,
    check_feature_list,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 8, 30, tzinfo=UTC)
CATS = ("home", "toys", "garden")
CATALOG = {
    f"I{i}": CatalogItem(f"I{i}", f"item {i}", (CATS[i % 3], "sub"), 2.0 + 3 * i) for i in range(8)
}
# (item, type, minutes after T0, quantity): repeats, a cart, views, purchases of several units.
LOG = [
    ("I0", "view", 0, 1),
    ("I0", "purchase", 5, 3),
    ("I1", "view", 60, 1),
    ("I2", "add_to_cart", 2000, 1),
    ("I2", "purchase", 2005, 2),
    ("I0", "purchase", 9000, 1),
    ("I4", "view", 12000, 1),
]
CANDIDATES = ["I0", "I3", "I4", "I5", "I7", "I2"]
PRIORS = [0.9, 0.7, 0.7, 0.2, -0.1, 0.05]
DP = {i: float(k * 7) for k, i in enumerate(CATALOG)}


def _serving_matrix(tmp_path: Path, bert: list[float]) -> np.ndarray:
    store = FeatureStore.from_url(f"sqlite:///{tmp_path / 'fs.db'}", clock=lambda: NOW)
    try:
        store.migrate()
        store.load_catalog(
            [Item(i, it.title, it.category_path, it.price, "emb") for i, it in CATALOG.items()]
        )
        store.ingest_events(
            [
                Event(f"e{n}", "u1", item, kind, T0 + timedelta(minutes=m), q)
                for n, (item, kind, m, q) in enumerate(LOG)
            ]
        )
        found = store.get_user_features("u1", 20)
    finally:
        store.close()
    message = feature_store_pb2.GetUserFeaturesResponse(
        features=user_features_to_proto(found), known_user=found.known
    )
    user = clients.user_features_from_proto(message)
    features = {
        i: ItemFeatures(i, it.title, it.category_path, it.price, DP[i]) for i, it in CATALOG.items()
    }
    history = [features[i] for i in user.recent_item_ids]
    context = shopper_context(user, history, NOW)
    context = dataclasses.replace(context, prior_scores=tuple(PRIORS))
    request = clients.score_request_to_proto(context, [features[i] for i in CANDIDATES])
    signals = shopper_signals(request.context, lambda: datetime(1999, 1, 1, tzinfo=UTC))
    return build_features(signals, candidate_signals(request), bert)


def _training_matrix(bert: list[float]) -> np.ndarray:
    events = [
        Interaction("u1", item, T0 + timedelta(minutes=m), kind, q) for item, kind, m, q in LOG
    ]
    signals, _ = ltr.shopper_signals(events, CATALOG, NOW)
    cands = [
        CandidateSignals(i, CATALOG[i].top_category, CATALOG[i].price, p, DP[i])
        for i, p in zip(CANDIDATES, PRIORS, strict=True)
    ]
    return build_features(signals, cands, bert)


def test_training_and_serving_build_the_same_features(tmp_path: Path) -> None:
    bert = [0.3, -1.0, 2.0, 0.0, 0.5, 1.5]
    served = _serving_matrix(tmp_path, bert)
    trained = _training_matrix(bert)
    assert served.shape == (len(CANDIDATES), len(FEATURES))
    np.testing.assert_allclose(served, trained, rtol=1e-9, equal_nan=True)
    col = {f: i for i, f in enumerate(FEATURES)}
    # The repeat features say what the shopper did: I0 seen 3 times, 4 units bought.
    assert served[0, col["own_event_count"]] == 3
    assert served[0, col["own_log_purchased_quantity"]] == pytest.approx(math.log1p(4))
    assert served[0, col["own_days_since_last"]] == pytest.approx(
        (NOW - (T0 + timedelta(minutes=9000))).total_seconds() / 86400
    )
    # I3 was never touched: no count, no recency (missing, not zero days).
    assert served[1, col["own_event_count"]] == 0
    assert math.isnan(served[1, col["own_days_since_last"]])
    # The request time the orchestrator sent wins over the ranker's clock.
    assert served[2, col["own_days_since_last"]] < 30


def test_features_are_relative_to_the_list() -> None:
    shopper = ShopperSignals(now=NOW)
    cands = [CandidateSignals(f"c{i}", "home", 0.0, 5.0, -3.0) for i in range(3)]
    x = build_features(shopper, cands, None)
    col = {f: i for i, f in enumerate(FEATURES)}
    assert np.isnan(x[:, col["bert_score_z"]]).all()  # no cross-encoder score
    assert (x[:, col["retrieval_score_z"]] == 0).all()  # equal scores standardise to 0
    assert x[:, col["retrieval_rank"]].tolist() == [0, 1, 2]
    assert (x[:, col["log_dp_popularity"]] == 0).all()  # negative DP noise clipped
    assert np.isnan(x[:, col["price_band_distance"]]).all()  # no price known
    shifted = build_features(shopper, cands, [10.0, 11.0, 12.0])
    scaled = build_features(shopper, cands, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(shifted[:, 0], scaled[:, 0])
    with pytest.raises(ValueError, match="one score per candidate"):
        build_features(shopper, cands, [1.0])


def test_feature_list_is_checked_against_the_version() -> None:
    assert check_feature_list(FEATURES[1:], FEATURE_SET_VERSION) == list(range(1, len(FEATURES)))
    with pytest.raises(ValueError, match="feature set"):
        check_feature_list(FEATURES, "ltr-features-v0")
    with pytest.raises(ValueError, match="unknown"):
        check_feature_list([*FEATURES, "mood"], FEATURE_SET_VERSION)
    with pytest.raises(ValueError, match="lacks required"):
        check_feature_list(FEATURES[2:], FEATURE_SET_VERSION)


def _booster(features: tuple[str, ...], seed: int = 0) -> object:
    import lightgbm

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(features)))
    y = (x[:, 1] + 0.5 * x[:, 3] > 0.5).astype(int)
    data = lightgbm.Dataset(x, y, group=[20] * 20, feature_name=list(features))
    params = {"objective": "lambdarank", "verbosity": -1, "num_threads": 1, "min_data_in_leaf": 5}
    return lightgbm.train(params, data, num_boost_round=10)


def test_contributions_sum_to_the_relevance_and_the_artefact_round_trips(
    tmp_path: Path,
) -> None:
    features = FEATURES[1:]
    booster = _booster(features)
    folder = save_ranking_model(booster, tmp_path, "v1", {"features": list(features)})
    assert (tmp_path / "LATEST").read_text().strip() == "v1"
    model = load_ranking_model(tmp_path)
    assert model is not None
    assert model.version == "v1"
    assert folder == model.folder
    assert not model.needs_bert
    x = np.random.default_rng(1).normal(size=(6, len(FEATURES)))
    x[0, FEATURES.index("own_days_since_last")] = np.nan
    scores = model.predict(x)
    raw = booster.predict(x[:, 1:])  # type: ignore[attr-defined]
    for s, r in zip(scores, raw, strict=True):
        assert s.relevance == pytest.approx(r, abs=1e-9)
        assert {c.feature for c in s.contributions} == set(features)
        mags = [abs(c.value) for c in s.contributions]
        assert mags == sorted(mags, reverse=True)


def test_missing_and_mismatched_artefacts(tmp_path: Path) -> None:
    assert load_ranking_model(tmp_path / "nothing-here") is None
    (tmp_path / "LATEST").write_text("gone\n")
    with pytest.raises(FileNotFoundError, match="gone"):
        load_ranking_model(tmp_path)
    booster = _booster(FEATURES[1:])
    with pytest.raises(ValueError, match="metadata lists"):
        RankingModel(
            booster, {"features": list(FEATURES), "feature_set_version": FEATURE_SET_VERSION}
        )
    with pytest.raises(ValueError, match="feature set"):
        RankingModel(booster, {"features": list(FEATURES[1:]), "feature_set_version": "v0"})


def test_own_interaction_dataclass_is_what_the_builder_reads() -> None:
    shopper = ShopperSignals(
        now=NOW,
        category_affinities={"toys": 0.25},
        recent_item_prices=[3.0, 5.0, 7.0],
        interactions={"a": OwnInteraction(2, 0, NOW + timedelta(days=1))},
    )
    x = build_features(shopper, [CandidateSignals("a", "toys", 5.0, 1.0, 9.0)], None)
    col = {f: i for i, f in enumerate(FEATURES)}
    assert x[0, col["own_days_since_last"]] == 0.0  # clock skew never gives negative days
    assert x[0, col["category_affinity"]] == 0.25
    assert x[0, col["price_band_distance"]] == 0.0  # 5.0 is the median price
    assert x[0, col["own_log_purchased_quantity"]] == 0.0


def test_training_popularity_counts_what_the_store_releases(tmp_path: Path) -> None:
    """``log_dp_popularity`` in training: distinct shoppers with any event on the item, the
    count the feature store hands the privacy gateway to noise (here with a bound no shopper
    reaches, so the two must agree exactly; views and carts count, not only purchases)."""
    log = [
        ("u1", "I0", "view"),
        ("u1", "I0", "purchase"),
        ("u2", "I0", "view"),
        ("u2", "I1", "add_to_cart"),
        ("u3", "I4", "view"),
        ("u3", "I2", "purchase"),
        ("u3", "I2", "purchase"),
    ]
    store = FeatureStore.from_url(f"sqlite:///{tmp_path / 'pop.db'}", clock=lambda: NOW)
    try:
        store.migrate()
        store.load_catalog(
            [Item(i, it.title, it.category_path, it.price, "emb") for i, it in CATALOG.items()]
        )
        store.ingest_events(
            [
                Event(f"e{n}", user, item, kind, T0 + timedelta(minutes=n), 1)
                for n, (user, item, kind) in enumerate(log)
            ]
        )
        released = store.contribution_bounded_counts(AggregateKind.ITEM_POPULARITY, 100)
    finally:
        store.close()
    events = [
        Interaction(user, item, T0 + timedelta(minutes=n), kind, 1)
        for n, (user, item, kind) in enumerate(log)
    ]
    training = ltr.store_popularity(events)
    assert {i: c for i, c in released.items() if c} == training
    assert training == {"I0": 2, "I1": 1, "I4": 1, "I2": 1}
