"""Settings of the retrieval service, from RECSYS_RETRIEVAL_* environment variables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from services.retrieval.index import HnswParams


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

    def hnsw_params(self) -> HnswParams:
        # Imported here: reading the settings (the CLI's port table) must not need FAISS.
        from services.retrieval.index import HnswParams

        return HnswParams(self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search)
