"""Settings of the privacy gateway (env prefix ``RECSYS_PRIVACY_GATEWAY_``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.peer_auth import require_mtls_for
from shared.settings import ServiceSettings


class PrivacyGatewaySettings(ServiceSettings):
    """Knobs of the privacy gateway; tests construct it with keyword arguments."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_PRIVACY_GATEWAY_", extra="ignore")

    port: int = Field(50051, ge=0, le=65535, description="gRPC port.")
    key_file: str = Field(
        "var/keys/pseudonym-keys.json",
        description="Key ring JSON; in Kubernetes the pseudonymization Secret mounted as a file.",
    )
    key_ring_json: SecretStr | None = Field(
        None,
        description="Key ring JSON given inline (development only); wins over key_file.",
    )
    key_grace_window_s: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        description="How long a retired key version still verifies its pseudonyms.",
    )
    key_reload_interval_s: float = Field(
        30.0,
        gt=0,
        description="How often the key file is re-read, so a rotated Secret applies without "
        "a restart.",
    )
    pii_policy_file: str | None = Field(
        None, description="JSON PII policy; unset means the built-in default policy."
    )
    database_url: str = Field(
        "sqlite:///var/privacy_ledger.sqlite", description="Privacy-budget ledger database."
    )
    feature_store_address: str = Field(
        "127.0.0.1:50052", description="FeatureStoreService address (host:port)."
    )
    feature_store_tls_ca_file: str | None = Field(
        None, description="CA of the feature store's server certificate; enables TLS to it."
    )
    feature_store_tls_cert_file: str | None = Field(
        None,
        description="Client certificate for mTLS; its name must be in the feature store's "
        "privileged_callers (e.g. privacy-gateway).",
    )
    feature_store_tls_key_file: str | None = Field(None, description="Client private key.")
    feature_store_tls_server_name: str | None = Field(
        None, description="Name to verify in the feature store's certificate, if not the host."
    )
    feature_store_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for one feature-store call."
    )
    epsilon_budget: float = Field(
        10.0,
        gt=0,
        description="Epsilon budget of any one event-time window: releases whose windows "
        "overlap add up to it (sequential composition), disjoint windows each have their own "
        "(parallel composition).",
    )
    delta_budget: float = Field(
        1e-5, ge=0, lt=1, description="Delta budget of any one event-time window."
    )
    default_mechanism: Literal["laplace", "gaussian"] = Field(
        "laplace", description="Mechanism when a request leaves it unspecified."
    )
    default_max_contributions: int = Field(
        5, ge=1, description="Per-user contribution bound when a request gives 0."
    )
    item_popularity_max_contributions: int = Field(
        2,
        ge=1,
        description="Per-user contribution bound of an item-popularity release when a request "
        "gives 0; chosen on a validation cut (docs/privacy.md, utility section).",
    )
    max_contributions_limit: int = Field(
        1000, ge=1, description="Largest contribution bound a request may ask for."
    )
    max_refs_per_request: int = Field(
        1000, ge=1, description="Most user references one Pseudonymize call may carry."
    )
    max_ref_length: int = Field(256, ge=1, description="Longest raw user reference accepted.")
    max_context_fields: int = Field(
        64, ge=1, description="Most fields one SanitizeContext call may carry."
    )
    privileged_callers: list[str] = Field(
        default_factory=list,
        description="Client-certificate names (common name or DNS SAN) allowed to call "
        'ReleaseAggregates, e.g. ["dp-release"] (the release Job\'s certificate); needs mTLS '
        "(tls_client_ca_file). Empty denies it to every caller.",
    )
    dev_allow_loopback_privileged: bool = Field(
        False,
        description="Development only: also grant ReleaseAggregates to callers on the loopback "
        "interface without a certificate (the local stack and tests). Logged as a warning at "
        "start and on every call it grants; never set it in a cluster.",
    )

    @model_validator(mode="after")
    def _privileged_callers_need_mtls(self) -> Self:
        require_mtls_for(self.privileged_callers, self.tls_client_ca_file)
        return self
