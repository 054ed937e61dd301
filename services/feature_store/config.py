"""Settings of the feature store (env prefix ``RECSYS_FEATURE_STORE_``)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.peer_auth import require_mtls_for
from shared.settings import ServiceSettings


class FeatureStoreSettings(ServiceSettings):
    """Knobs of the feature store; tests construct it with keyword arguments."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_FEATURE_STORE_", extra="ignore")

    port: int = Field(50052, ge=0, le=65535, description="gRPC port.")
    database_url: str = Field(
        "sqlite:///var/feature_store.sqlite",
        description="SQLAlchemy URL: an SQLite file (embedded default) or "
        "postgresql+psycopg://user@host:5432/db. May hold a password: never logged.",
    )
    db_pool_size: int = Field(5, ge=1, description="Connections kept per process.")
    auto_migrate: bool = Field(
        True,
        description="Apply pending migrations at start-up (replicas serialise on a "
        "PostgreSQL advisory lock); off when a separate job migrates.",
    )
    readiness_interval_s: float = Field(
        5.0, gt=0, description="How often the background check probes the database."
    )
    readiness_timeout_s: float = Field(
        3.0, gt=0, description="A database probe slower than this counts as a failure."
    )
    max_item_batch: int = Field(
        1000, ge=1, description="Most item ids per GetItemFeatures (and exclusions per call)."
    )
    max_events_per_call: int = Field(1000, ge=1, description="Most events per IngestEvents.")
    max_catalog_items_per_call: int = Field(10_000, ge=1, description="Most items per LoadCatalog.")
    max_popularities_per_call: int = Field(
        500_000, ge=1, description="Most entries per SetItemPopularity (a whole-catalog release)."
    )
    default_recent_items: int = Field(
        50, ge=1, description="Recent items returned when a request asks for 0."
    )
    max_recent_items: int = Field(500, ge=1, description="Largest max_recent_items accepted.")
    max_popular_items: int = Field(1000, ge=1, description="Largest GetPopularItems limit.")
    max_contributions_limit: int = Field(
        10_000, ge=1, description="Largest max_contributions_per_user accepted."
    )
    privileged_callers: list[str] = Field(
        default_factory=list,
        description="Client-certificate names (common name or DNS SAN) allowed to call "
        'GetContributionBoundedCounts and SetItemPopularity, e.g. ["privacy-gateway"]; '
        "needs mTLS (tls_client_ca_file). Empty denies those methods to every caller.",
    )
    dev_allow_loopback_privileged: bool = Field(
        False,
        description="Development only: also grant the privileged methods to callers on the "
        "loopback interface without a certificate (the local stack and tests). Logged as a "
        "warning at start and on every call it grants; never set it in a cluster.",
    )

    @model_validator(mode="after")
    def _privileged_callers_need_mtls(self) -> Self:
        require_mtls_for(self.privileged_callers, self.tls_client_ca_file)
        return self
