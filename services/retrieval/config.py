"""Settings of the retrieval service, from RECSYS_RETRIEVAL_* environment variables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.retrieval.sources import DEFAULT_HISTORY_DECAY, SourceWeights
from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from services.retrieval.index import HnswParams

_FUSION = SourceWeights()


class RetrievalSettings(ServiceSettings):
    """Where the versioned artefacts live, which index to build, and request limits."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_RETRIEVAL_", extra="ignore")

    port: int = Field(50053, ge=0, le=65535, description="Port to bind; 0 picks a free port.")
    artefact_root: str = Field(
        "var/models/retrieval", description="Directory of version folders and LATEST."
    )
    index_version: str = Field("", description="Version to serve at start; empty means LATEST.")
    index_type: Literal["flat", "hnsw"] = Field(
        "flat", description="flat = exact IndexFlatIP; hnsw = IndexHNSWFlat for large catalogs."
    )
    hnsw_m: int = Field(32, ge=2, description="HNSW graph degree M.")
    hnsw_ef_construction: int = Field(200, ge=1, description="HNSW build beam width.")
    hnsw_ef_search: int = Field(
        128, ge=1, description="HNSW search beam width; raised to n when n is larger."
    )
    max_n: int = Field(1000, ge=1, description="Largest number of candidates one request gets.")
    max_request_ids: int = Field(
        1000, ge=1, description="Most item ids one request may carry in a list."
    )
    max_live_items: int = Field(
        50_000,
        ge=0,
        description="Most items UpsertItems may add beyond the trained version; each change "
        "rebuilds their exact index, so retrain (which folds them in) well before this.",
    )
    reload_interval_s: float = Field(
        0.0, ge=0, description="Poll LATEST this often and hot-swap when it changes; 0 = off."
    )
    # Reciprocal-rank fusion of the candidate sources (services/retrieval/sources.py). The
    # defaults, SourceWeights', were chosen on a validation cut of Online Retail
    # (docs/retrieval.md, "Candidate sources"); 0 switches a source off.
    weight_two_tower: float = Field(
        _FUSION.two_tower, ge=0, description="Fusion weight of the two-tower index."
    )
    weight_collaborative: float = Field(
        _FUSION.collaborative,
        ge=0,
        description="Fusion weight of the ALS index (versions that have one).",
    )
    weight_history: float = Field(
        _FUSION.history, ge=0, description="Fusion weight of the shopper's own history items."
    )
    rrf_k: float = Field(
        _FUSION.rrf_k, ge=0, description="The k of reciprocal-rank fusion, 1/(k + rank)."
    )
    history_decay: float = Field(
        DEFAULT_HISTORY_DECAY,
        gt=0,
        le=1,
        description="A history item scores decay**position per occurrence.",
    )

    def hnsw_params(self) -> HnswParams:
        # Imported here: reading the settings (the CLI's port table) must not need FAISS.
        from services.retrieval.index import HnswParams

        return HnswParams(self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search)

    def source_weights(self) -> SourceWeights:
        return SourceWeights(
            self.weight_two_tower, self.weight_collaborative, self.weight_history, self.rrf_k
        )
