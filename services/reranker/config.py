"""Settings of the reranker (env prefix ``RECSYS_RERANKER_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

# Kept here, not in dpp.py, so that reading the settings (the CLI's port table) needs no numpy.
DEFAULT_EPS = 1e-9


class RerankerSettings(ServiceSettings):
    """The reranker is stateless: no downstream addresses, only limits and defaults."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_RERANKER_", extra="ignore")

    port: int = Field(50055, ge=0, le=65535)
    default_method: Literal["dpp", "mmr", "none"] = Field(
        "dpp", description="Method applied when a request leaves it RERANK_METHOD_UNSPECIFIED."
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
        description="Weight w of category similarity in S = (1 - w) cos + w same-category, "
        "when candidates carry both embeddings and categories.",
    )
    dpp_epsilon: float = Field(
        DEFAULT_EPS,
        gt=0.0,
        lt=1.0,
        description="DPP stops (and fills by relevance) when no residual is above this.",
    )

    @field_validator("default_window")
    @classmethod
    def _window_not_one(cls, value: int) -> int:
        if value == 1:
            raise ValueError("default_window must be 0 (no window) or at least 2")
        return value
