"""Settings of the reranker (env prefix ``RECSYS_RERANKER_``)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

# Kept here, not in dpp.py, so that reading the settings (the CLI's port table) needs no numpy.
DEFAULT_EPS = 1e-9
# Category similarity b_1 + ... + b_m of two items sharing a prefix of depth m (docs/reranker.md):
# 0.2 for the same top level, 0.5 for the same second level, 1 for the same third level (or the
# same path). On the catalogues here (department/aisle, derived/noun, top/mid/noun) the first
# level alone says little: every Online Retail item shares it, and one synthetic "toys" list
# may hold three crayons; the leaf is where near-duplicates live.
DEFAULT_LEVEL_WEIGHTS = (0.2, 0.3, 0.5)


class RerankerSettings(ServiceSettings):
    """The reranker is stateless: no downstream addresses, only limits and defaults."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_RERANKER_", extra="ignore")

    port: int = Field(50055, ge=0, le=65535)
    default_method: Literal["dpp", "mmr", "none"] = Field(
        "mmr",
        description="Method applied when a request leaves it RERANK_METHOD_UNSPECIFIED. MMR: "
        "with the orchestrator's default trade-off 0.25, the knee chosen on three validation "
        "cuts of Online Retail pooled (docs/evaluation.md).",
    )
    max_candidates: int = Field(
        2000, ge=1, description="Largest candidate list accepted; more is INVALID_ARGUMENT."
    )
    max_embedding_dim: int = Field(4096, ge=1, description="Largest embedding dimension accepted.")
    default_window: int = Field(
        0,
        ge=0,
        description="DPP sliding window used when a request sends window_size 0; "
        "0 keeps the whole list diverse, otherwise at least 2.",
    )
    category_weight: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Weight w of category similarity in S = (1 - w) cos + w H, "
        "when candidates carry both embeddings and categories.",
    )
    category_level_weights: tuple[float, ...] = Field(
        DEFAULT_LEVEL_WEIGHTS,
        min_length=1,
        description="Level weights b_1..b_D of the hierarchical category similarity "
        "H = sum_l b_l [same category at level l], scaled to sum to 1 (so two items on the same "
        "path have H = 1); levels deeper than D carry no weight. (1,) is 'same top-level "
        "category or not'. As an env var, a JSON list: [0.2, 0.3, 0.5].",
    )
    category_cap_level: int = Field(
        1,
        ge=1,
        description="Category level at which max_per_category applies when a request sends "
        "category_cap_level 0; 1 is the top level.",
    )
    max_category_depth: int = Field(
        16, ge=1, description="Longest category path accepted; longer is INVALID_ARGUMENT."
    )
    dpp_epsilon: float = Field(
        DEFAULT_EPS,
        gt=0.0,
        lt=1.0,
        description="DPP stops (and fills by relevance) when no residual is above this.",
    )

    @field_validator("category_level_weights")
    @classmethod
    def _weights_usable(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not math.isfinite(b) or b < 0 for b in value) or not sum(value) > 0:
            raise ValueError("category_level_weights must be finite, >= 0 and not all zero")
        return value

    @model_validator(mode="after")
    def _cap_level_within_depth(self) -> RerankerSettings:
        if self.category_cap_level > self.max_category_depth:
            raise ValueError("category_cap_level must not exceed max_category_depth")
        return self

    @field_validator("default_window")
    @classmethod
    def _window_not_one(cls, value: int) -> int:
        if value == 1:
            raise ValueError("default_window must be 0 (no window) or at least 2")
        return value
