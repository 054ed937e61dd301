"""The orchestrator's domain values: what the pipeline asks of its dependencies, what they
answer, and what Recommend and LogEvents return.

Plain dataclasses and enums, no protobuf: ``clients.py`` converts them to and from the
downstream messages, ``servicer.py`` to and from the public API, so the pipeline can be driven
by an in-memory backend in tests.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from shared.filters import NO_FILTER, ItemFilter


class Stage(enum.Enum):
    """A step of the pipeline, for provenance and degradation flags; the value is the label
    used in spans, logs and metrics."""

    PRIVACY_GATEWAY = "privacy_gateway"
    FEATURE_STORE = "feature_store"
    RETRIEVAL = "retrieval"
    RANKER = "ranker"
    RERANKER = "reranker"
    POPULARITY = "popularity"


class Reason(enum.StrEnum):
    """Why a stage degraded: the failed call's status, or a decision of the pipeline."""

    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    INVALID_ARGUMENT = "invalid_argument"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    OUT_OF_RANGE = "out_of_range"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    DATA_LOSS = "data_loss"
    UNAUTHENTICATED = "unauthenticated"
    # The pipeline's own decisions.
    NO_ITEM_FEATURES = "no_item_features"
    INCOMPLETE_SCORES = "incomplete_scores"
    # No DP popularity release exists yet: the list is the catalog in item-id order.
    NO_DP_RELEASE = "no_dp_release"
    ERROR = "error"

    @classmethod
    def from_status(cls, status_name: str) -> Reason:
        """The reason for a failed call with the named status (``"UNAVAILABLE"``)."""
        try:
            return cls(status_name.lower())
        except ValueError:
            return cls.ERROR


class RerankMethod(enum.Enum):
    """The diversification algorithm; the value is the label the public API reports in
    ``versions["reranker_method"]`` (the protobuf enum's name, one vocabulary for clients)."""

    UNSPECIFIED = "RERANK_METHOD_UNSPECIFIED"
    NONE = "RERANK_METHOD_NONE"
    MMR = "RERANK_METHOD_MMR"
    DPP = "RERANK_METHOD_DPP"


class ReasonKind(enum.Enum):
    """Why an item is on the list (the public ``ReasonKind``; the value is its proto name)."""

    SIMILAR_TO_HISTORY_ITEM = "REASON_KIND_SIMILAR_TO_HISTORY_ITEM"
    BOUGHT_BEFORE = "REASON_KIND_BOUGHT_BEFORE"
    POPULAR_IN_CATEGORY = "REASON_KIND_POPULAR_IN_CATEGORY"
    PICKED_FOR_VARIETY = "REASON_KIND_PICKED_FOR_VARIETY"
    NEW_ITEM = "REASON_KIND_NEW_ITEM"
    COLD_START_POPULAR = "REASON_KIND_COLD_START_POPULAR"
    IN_FAVOURITE_CATEGORY = "REASON_KIND_IN_FAVOURITE_CATEGORY"
    MATCHES_HISTORY = "REASON_KIND_MATCHES_HISTORY"
    POPULAR_FALLBACK = "REASON_KIND_POPULAR_FALLBACK"
    CATALOG_ORDER = "REASON_KIND_CATALOG_ORDER"
    SIMILAR_TO_ITEM = "REASON_KIND_SIMILAR_TO_ITEM"


class AnswerPath(enum.Enum):
    """Which path of the pipeline produced an answer (services.orchestrator.reasons)."""

    # Retrieval from the shopper's history, then ranker and reranker (each may degrade).
    PERSONAL = "personal"
    # No known history item: candidates from the DP popularity release, ranked and reranked.
    COLD_START = "cold_start"
    # The feature store or retrieval was down: the DP popularity list as it is.
    POPULARITY_FALLBACK = "popularity_fallback"
    # No DP release exists yet and no history applies: the catalog in item-id order.
    CATALOG_ORDER = "catalog_order"
    # SimilarItems: the seed item's nearest neighbours, reranked; no shopper involved.
    SIMILAR = "similar"


class CandidateSource(enum.Enum):
    """Which retrieval source returned a candidate; the value is the label in spans."""

    TWO_TOWER = "two_tower"
    COLLABORATIVE = "collaborative"
    HISTORY = "history"


class EventType(enum.Enum):
    """The kind of shopper interaction."""

    VIEW = "view"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"


# ---- what the dependencies answer ---------------------------------------------------------


@dataclass(frozen=True)
class Pseudonyms:
    """The gateway's answer: one pseudonym per reference, in request order."""

    pseudonyms: tuple[str, ...]
    key_version: str


@dataclass(frozen=True)
class ItemFeatures:
    """Catalog attributes of one item and its DP popularity (0 until a release);
    ``available`` False: out of stock or retired, never in an answer."""

    item_id: str
    title: str = ""
    category_path: tuple[str, ...] = ()
    price: float = 0.0
    dp_popularity: float = 0.0
    available: bool = True

    @property
    def category(self) -> str:
        """The top-level category, or "" for an item without one."""
        return self.category_path[0] if self.category_path else ""


@dataclass(frozen=True)
class ItemInteraction:
    """A shopper's own events on one item: count, units bought, latest time."""

    item_id: str
    event_count: int
    purchased_quantity: int
    last_event_time: datetime


@dataclass(frozen=True)
class UserFeatures:
    """What the store derived from a pseudonymous user's events; ``category_affinities``
    are (top-level category, share) strongest first, ``item_interactions`` the shopper's own
    history with the recent items."""

    known_user: bool
    recent_item_ids: tuple[str, ...] = ()
    purchased_item_ids: tuple[str, ...] = ()
    top_categories: tuple[str, ...] = ()
    category_affinities: tuple[tuple[str, float], ...] = ()
    item_interactions: tuple[ItemInteraction, ...] = ()


@dataclass(frozen=True)
class ItemLookup:
    """Features of the items found; ``missing_item_ids`` were asked for but are unknown."""

    items: tuple[ItemFeatures, ...]
    missing_item_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PopularItems:
    """A DP popularity list, most popular first, the release it came from and when the
    feature store applied that release (None before the first release)."""

    items: tuple[ItemFeatures, ...]
    release_id: str
    release_time: dt.datetime | None = None


@dataclass(frozen=True)
class SourceScore:
    """What one retrieval source said about a candidate: its own score and 1-based rank
    (features a learned ranker can use)."""

    source: CandidateSource
    score: float
    rank: int


@dataclass(frozen=True)
class RetrievedItem:
    """One retrieval candidate: its merged retrieval score, its normalised embedding and
    every source that returned it, strongest first."""

    item_id: str
    score: float
    embedding: tuple[float, ...] = ()
    source_scores: tuple[SourceScore, ...] = ()


@dataclass(frozen=True)
class RetrievalResult:
    """Candidates by decreasing score; ``cold_start`` when no history item was known."""

    candidates: tuple[RetrievedItem, ...]
    index_version: str
    cold_start: bool = False


@dataclass(frozen=True)
class ShopperContext:
    """What the ranker reads about the shopper, built from pseudonymous features: the text
    for the cross-encoder, and the behaviour signals of the learned ranking model.
    ``prior_scores`` holds one score per candidate of the score call, in its order (the
    retrieval score, or DP popularity for a cold-start list); ``request_time`` None lets the
    ranker use its clock. ``ranking_model`` names the learned model to apply ("" the ranker's
    default, "none" none; an experiment variant sets it)."""

    recent_item_titles: tuple[str, ...] = ()
    recent_categories: tuple[str, ...] = ()
    category_affinities: tuple[tuple[str, float], ...] = ()
    recent_item_prices: tuple[float, ...] = ()
    item_interactions: tuple[ItemInteraction, ...] = ()
    prior_scores: tuple[float, ...] = ()
    request_time: datetime | None = None
    ranking_model: str = ""


@dataclass(frozen=True)
class FeatureContribution:
    """One feature's additive share of the learned relevance of an item."""

    feature: str
    value: float


@dataclass(frozen=True)
class Scores:
    """The ranker's answer: the cross-encoder's logit per item id and which model produced
    them; with a learned ranking model (``ranking_model_version`` set) also its relevance and
    per-feature contributions (largest magnitude first) per item id."""

    scores: dict[str, float]
    model_name: str
    model_version: str
    backend: str
    relevance: dict[str, float] = field(default_factory=dict)
    contributions: dict[str, tuple[FeatureContribution, ...]] = field(default_factory=dict)
    ranking_model_version: str = ""


@dataclass(frozen=True)
class RerankCandidate:
    """What the reranker needs to know of one candidate; the whole category path, because the
    reranker's category similarity grows with the depth of the prefix two items share."""

    item_id: str
    relevance: float
    embedding: tuple[float, ...] = ()
    category_path: tuple[str, ...] = ()

    @property
    def category(self) -> str:
        """The top-level category, or "" for an item without one."""
        return self.category_path[0] if self.category_path else ""


@dataclass(frozen=True)
class RerankRequest:
    """A diversified selection of ``k`` of the candidates; ``category_cap_level`` 0 leaves
    the level ``max_per_category`` applies at to the reranker's default (the top level)."""

    candidates: tuple[RerankCandidate, ...]
    k: int
    method: RerankMethod
    tradeoff: float
    max_per_category: int = 0
    category_cap_level: int = 0


@dataclass(frozen=True)
class RerankedItem:
    """One selected item and its method-specific selection score."""

    item_id: str
    selection_score: float


@dataclass(frozen=True)
class RerankResult:
    """The selection in display order and the method actually applied."""

    items: tuple[RerankedItem, ...]
    method: RerankMethod


@dataclass(frozen=True)
class StoredEvent:
    """An interaction as the store keeps it: keyed by a pseudonym, never a raw reference."""

    event_id: str
    user_id: str
    item_id: str
    type: EventType
    timestamp: datetime
    quantity: int
    recommendation_id: str = ""
    position: int = 0


@dataclass(frozen=True)
class ServedList:
    """One answered list as the online metrics count it: no user id, no items."""

    recommendation_id: str
    served_at: datetime
    method: str
    item_count: int
    assignments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class IngestResult:
    """How many events were newly stored and how many were already there."""

    accepted: int
    duplicates: int


# ---- what the public API asks and answers -------------------------------------------------


@dataclass(frozen=True)
class RecommendQuery:
    """A validated Recommend request; ``user_ref`` is raw and only goes to the gateway.
    ``filters`` hold on every path; ``shown_item_ids`` are what earlier pages of a page
    token's lineage showed, excluded like ``excluded_item_ids``."""

    user_ref: str
    k: int
    method: RerankMethod
    tradeoff: float
    max_per_category: int = 0
    excluded_item_ids: tuple[str, ...] = ()
    exclude_purchased: bool = False
    filters: ItemFilter = NO_FILTER
    shown_item_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SimilarQuery:
    """A validated SimilarItems request: the seed item, no shopper; ``filters`` is the same
    predicate Recommend applies."""

    item_id: str
    k: int
    method: RerankMethod
    tradeoff: float
    max_per_category: int = 0
    excluded_item_ids: tuple[str, ...] = ()
    filters: ItemFilter = field(default_factory=ItemFilter)


@dataclass(frozen=True)
class ShopperEvent:
    """A validated interaction as reported by a client, with the raw user reference;
    ``timestamp`` None means now."""

    event_id: str
    user_ref: str
    item_id: str
    type: EventType
    timestamp: datetime | None = None
    quantity: int = 1
    # The list the shopper acted from ("" for none) and the 1-based position in it (0: none).
    recommendation_id: str = ""
    position: int = 0


@dataclass(frozen=True)
class ItemReason:
    """One reason an item is on the list: its kind, a short text for the shopper, and the
    history item or category it refers to ("" when none)."""

    kind: ReasonKind
    text: str
    history_item_id: str = ""
    category: str = ""


@dataclass
class Candidate:
    """One item moving through the pipeline; the stages that produced or ordered it.
    ``relevance_rank`` is its 0-based place by relevance among all candidates the reranker
    was offered (None when no reranker was asked), ``reasons`` why it is on the list."""

    item_id: str
    retrieval_score: float = 0.0
    relevance: float = 0.0
    score: float = 0.0
    embedding: tuple[float, ...] = ()
    features: ItemFeatures | None = None
    stages: list[Stage] = field(default_factory=list)
    relevance_rank: int | None = None
    reasons: list[ItemReason] = field(default_factory=list)
    # The retrieval sources that returned it, strongest first (empty off the retrieval path).
    retrieval_sources: tuple[SourceScore, ...] = ()
    contributions: tuple[FeatureContribution, ...] = ()

    @property
    def category(self) -> str:
        return self.features.category if self.features is not None else ""

    @property
    def category_path(self) -> tuple[str, ...]:
        return self.features.category_path if self.features is not None else ()


@dataclass(frozen=True)
class Degradation:
    """One stage that was skipped or replaced by its fallback."""

    stage: Stage
    reason: Reason


def new_recommendation_id() -> str:
    """128 random bits as URL-safe text: unique and unguessable, derived from nothing about
    the shopper, so it can travel in client logs and URLs."""
    return secrets.token_urlsafe(16)


@dataclass
class Outcome:
    """What Recommend answers: items in display order, degraded stages, versions, how many
    candidates the filters removed before ranking, the list's recommendation id and the
    shopper's (experiment, variant) assignments."""

    items: list[Candidate] = field(default_factory=list)
    degraded: list[Degradation] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    filtered_out: int = 0
    recommendation_id: str = field(default_factory=new_recommendation_id)
    assignments: list[tuple[str, str]] = field(default_factory=list)

    def degrade(self, stage: Stage, reason: Reason) -> None:
        """Flag ``stage``; the first reason a stage degraded for is the one reported."""
        if all(d.stage != stage for d in self.degraded):
            self.degraded.append(Degradation(stage, reason))

    @property
    def degraded_stages(self) -> set[Stage]:
        return {d.stage for d in self.degraded}
