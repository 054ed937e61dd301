"""The learned ranking model's features: ONE builder for training and serving.

``offline.ranker.ltr`` builds the training matrix with ``build_features`` from the log as it
stood at a validation cut; the ranker service builds the serving matrix with the same function
from what the orchestrator sends (services.ranker.learned). Inputs are plain values, so both
sides fill the same dataclasses and a parity test compares them.

The feature list is fixed and versioned (``FEATURE_SET_VERSION``): a model's metadata records
the version and the subset of ``FEATURES`` it was fitted on, and serving refuses a model
built on another version. Change a definition or the order -> bump the version.

Every feature is defined relative to the candidate list or to "now" (the cut in training, the
request time at serving), never on an absolute scale one side cannot reproduce: the BERT and
retrieval scores are standardised within the list, so the training candidate source (basket
co-occurrence) and the serving one (two-tower FAISS) can differ in scale. Missing values are
NaN (LightGBM learns a direction for them): no BERT score, never interacted, no price.

Pure numpy, no grpc and no LightGBM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

FEATURE_SET_VERSION = "ltr-features-v1"

FEATURES: tuple[str, ...] = (
    # The cross-encoder's logit, standardised over the request's candidates.
    "bert_score_z",
    # The score the candidate arrived with (retrieval similarity), standardised over the list.
    "retrieval_score_z",
    # 0-based position in the candidate list (the retrieval order).
    "retrieval_rank",
    # log(1 + DP popularity); the raw count's scale grows with the log.
    "log_dp_popularity",
    # The shopper's own events on this item (any type); 0 when none.
    "own_event_count",
    # log(1 + units of this item the shopper bought); 0 when never bought.
    "own_log_purchased_quantity",
    # Days from the shopper's last event on the item to now; NaN when never interacted.
    "own_days_since_last",
    # The shopper's affinity (share of weighted interactions) for the item's top category.
    "category_affinity",
    # |log(1 + price) - median log(1 + price) of the shopper's recent items|; NaN when unknown.
    "price_band_distance",
)

# Features a model can be fitted without: a model trained without the cross-encoder score
# records the shorter list, and serving selects its columns.
OPTIONAL_FEATURES = frozenset({"bert_score_z"})


@dataclass(frozen=True)
class OwnInteraction:
    """The shopper's own history with one item: what the feature store's user_items holds."""

    event_count: int
    purchased_quantity: int
    last_event_time: datetime


@dataclass(frozen=True)
class ShopperSignals:
    """What the features need to know of the shopper, as of ``now``."""

    now: datetime
    category_affinities: Mapping[str, float] = field(default_factory=dict)
    recent_item_prices: Sequence[float] = ()
    interactions: Mapping[str, OwnInteraction] = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateSignals:
    """What the features need to know of one candidate; its list position is its rank."""

    item_id: str
    top_category: str
    price: float
    retrieval_score: float
    dp_popularity: float


def standardise(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the list; all zeros when the list is constant."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x
    # Equal values can still show a rounding-sized std (0.2 three times has ~3e-17): only
    # a spread that is real relative to the values' magnitude is standardised.
    std = float(x.std())
    scale = float(np.abs(x).max())
    if not np.isfinite(std) or std <= 1e-12 * max(scale, 1e-300):
        return np.zeros_like(x)
    return (x - x.mean()) / std


def _log_price(price: float) -> float:
    return math.log1p(price) if math.isfinite(price) and price > 0 else math.nan


def build_features(
    shopper: ShopperSignals,
    candidates: Sequence[CandidateSignals],
    bert_scores: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """The (len(candidates), len(FEATURES)) float64 matrix, columns in ``FEATURES`` order.

    ``bert_scores`` (one per candidate) may be None: the column is then NaN, and only a model
    fitted without it can use the matrix."""
    n = len(candidates)
    out = np.full((n, len(FEATURES)), np.nan, dtype=np.float64)
    if n == 0:
        return out
    col = {name: i for i, name in enumerate(FEATURES)}
    if bert_scores is not None:
        if len(bert_scores) != n:
            raise ValueError("bert_scores must hold one score per candidate")
        out[:, col["bert_score_z"]] = standardise(bert_scores)
    out[:, col["retrieval_score_z"]] = standardise([c.retrieval_score for c in candidates])
    out[:, col["retrieval_rank"]] = np.arange(n, dtype=np.float64)
    out[:, col["log_dp_popularity"]] = [math.log1p(max(c.dp_popularity, 0.0)) for c in candidates]
    prices = [p for p in (_log_price(x) for x in shopper.recent_item_prices) if math.isfinite(p)]
    band = float(np.median(prices)) if prices else math.nan
    for row, cand in enumerate(candidates):
        own = shopper.interactions.get(cand.item_id)
        if own is None:
            out[row, col["own_event_count"]] = 0.0
            out[row, col["own_log_purchased_quantity"]] = 0.0
        else:
            out[row, col["own_event_count"]] = float(own.event_count)
            out[row, col["own_log_purchased_quantity"]] = math.log1p(max(own.purchased_quantity, 0))
            days = (shopper.now - own.last_event_time).total_seconds() / 86400.0
            out[row, col["own_days_since_last"]] = max(days, 0.0)
        out[row, col["category_affinity"]] = shopper.category_affinities.get(cand.top_category, 0.0)
        out[row, col["price_band_distance"]] = abs(_log_price(cand.price) - band)
    return out


def check_feature_list(names: Sequence[str], version: str) -> list[int]:
    """Column indices of a model's feature list in ``FEATURES``; ValueError when the model was
    built on another feature set version, names an unknown feature or leaves out a required
    one."""
    if version != FEATURE_SET_VERSION:
        raise ValueError(
            f"the ranking model was built on feature set {version!r}, this code builds "
            f"{FEATURE_SET_VERSION!r}; retrain it with scripts/train_ltr.py"
        )
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"the ranking model names unknown features {unknown}")
    missing = [n for n in FEATURES if n not in names and n not in OPTIONAL_FEATURES]
    if missing:
        raise ValueError(f"the ranking model lacks required features {missing}")
    return [FEATURES.index(n) for n in names]
