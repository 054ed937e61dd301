"""Settings of the orchestrator: downstream addresses, deadlines, limits and fallbacks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

RerankerMethodName = Literal["unspecified", "none", "mmr", "dpp"]


class OrchestratorSettings(ServiceSettings):
    """Env vars ``RECSYS_ORCHESTRATOR_*``; tests pass keyword arguments."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_ORCHESTRATOR_", extra="ignore")

    port: int = Field(50050, ge=0, le=65535)

    privacy_gateway_addr: str = Field("127.0.0.1:50051", description="host:port of the gateway.")
    feature_store_addr: str = Field("127.0.0.1:50052", description="host:port of the store.")
    retrieval_addr: str = Field("127.0.0.1:50053", description="host:port of retrieval.")
    ranker_addr: str = Field("127.0.0.1:50054", description="host:port of the ranker.")
    reranker_addr: str = Field("127.0.0.1:50055", description="host:port of the reranker.")

    default_deadline_s: float = Field(
        3.0, gt=0, description="End-to-end budget when the caller sends no deadline (or more)."
    )
    max_in_flight: int = Field(
        32, ge=1, description="Concurrent Recommend calls; more are shed with RESOURCE_EXHAUSTED."
    )
    max_k: int = Field(100, ge=1, description="Largest k a caller may ask for.")
    max_exclusions: int = Field(1000, ge=0, description="Most excluded_item_ids per request.")
    max_events_per_call: int = Field(1000, ge=1, description="Most events per LogEvents call.")
    max_context_fields: int = Field(32, ge=0, description="Most context entries per request.")
    candidate_count: int = Field(
        100, ge=1, description="Candidates retrieved (N); the ranker scores all of them."
    )
    ranker_enabled: bool = Field(
        True,
        description="Whether the ranker stage runs; off serves retrieval order (an incident, a "
        "CPU-only deployment). Overridable at run time by switches_file.",
    )
    default_reranker_method: RerankerMethodName = Field(
        "unspecified",
        description="Method sent to the reranker when the request names none; 'unspecified' "
        "leaves the choice to the reranker. Overridable at run time by switches_file.",
    )
    switches_file: str | None = Field(
        None,
        description="JSON file of stage switches (ranker_enabled, default_reranker_method, "
        "candidate_count) re-read when it changes; e.g. a mounted ConfigMap key.",
    )
    switches_poll_s: float = Field(
        1.0, gt=0, description="Most seconds before a change of switches_file takes effect."
    )
    experiments_file: str | None = Field(
        None,
        description="JSON file of A/B experiments (services.orchestrator.experiments) re-read "
        "when it changes; e.g. a mounted ConfigMap key. Unset: no experiments.",
    )
    experiments_poll_s: float = Field(
        1.0, gt=0, description="Most seconds before a change of experiments_file takes effect."
    )
    record_served_lists: bool = Field(
        True,
        description="Record each answered list (recommendation id, method, item count, "
        "variants) in the feature store, asynchronously: the impressions of the online metrics.",
    )
    served_list_batch: int = Field(
        100, ge=1, description="Most served lists per RecordServedLists call."
    )
    served_list_queue: int = Field(
        10_000,
        ge=1,
        description="Served lists waiting to be sent; beyond it new ones are dropped and "
        "counted (recsys.orchestrator.served_lists{outcome=dropped}), never a failed Recommend.",
    )
    served_list_timeout_s: float = Field(
        2.0, gt=0, description="Deadline of one RecordServedLists call."
    )
    recent_items: int = Field(20, ge=1, description="History length asked of the store.")
    ranker_weight: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Fallback when the ranker has no learned ranking model: share of the "
        "cross-encoder in relevance: w * z(ranker score) + (1 - w) * "
        "z(retrieval score or DP popularity), standardised over the request's candidates; "
        "1 = the ranker's logits alone. 0.5 measured best on Online Retail (docs/evaluation.md).",
    )
    contributions_per_item: int = Field(
        3,
        ge=0,
        le=16,
        description="Feature contributions of the learned ranking model kept per answered "
        "item (largest magnitude first); 0 keeps none.",
    )
    default_tradeoff: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Trade-off when the request has no diversity settings. 0.25: the knee of "
        "the relevance-diversity curve on three validation cuts of Online Retail pooled (MMR, "
        "the reranker's default method, over the served candidates, within 5% of their "
        "NDCG@10; docs/evaluation.md).",
    )
    popularity_size: int = Field(
        500, ge=1, description="Length of the cached DP popularity list used as fallback."
    )
    popularity_refresh_s: float = Field(
        30.0, gt=0, description="How often the popularity list is refreshed in the background."
    )
    popularity_fetch_timeout_s: float = Field(
        2.0, gt=0, description="Deadline of one background fetch of the popularity list."
    )
    downstream_max_attempts: int = Field(
        2, ge=1, description="Attempts per outbound call (retries on UNAVAILABLE only)."
    )
    downstream_tls_ca_file: str | None = Field(
        None,
        description="CA of the downstream services' server certificates; enables TLS on every "
        "outbound channel (each certificate must name the host dialled).",
    )
    downstream_tls_cert_file: str | None = Field(
        None, description="Client certificate for mTLS to the downstream services."
    )
    downstream_tls_key_file: str | None = Field(None, description="Client private key.")
    filter_overfetch: int = Field(
        4,
        ge=1,
        description="With a category or price filter, retrieval is asked for this many times "
        "the candidate count, so filtered-out items do not take candidate slots.",
    )
    filter_max_rounds: int = Field(
        3,
        ge=1,
        description="Most retrieval rounds (each excluding what earlier rounds returned) to "
        "fill the candidate count when a filter removes most candidates.",
    )
    retrieval_max_n: int = Field(
        1000, ge=1, description="Most candidates one retrieval call may ask for (its max_n)."
    )
    page_token_key: SecretStr | None = Field(
        None,
        description="HMAC key (at least 16 bytes) that signs page tokens; every replica needs "
        "the same one. Unset: a random key per process, so tokens die with it (dev only).",
    )
    page_token_key_file: str | None = Field(
        None,
        description="File holding the page-token key (a mounted Secret); wins over page_token_key.",
    )
    page_token_ttl_s: float = Field(
        3600.0, gt=0, description="Lifetime of a page token in seconds."
    )
    page_token_max_shown: int = Field(
        500,
        ge=1,
        description="Most items one paging lineage shows; no next page token beyond, so a "
        "token stays a few KB.",
    )
    breaker_enabled: bool = Field(
        True,
        description="A circuit breaker per downstream service (services.orchestrator.breaker).",
    )
    breaker_consecutive_failures: int = Field(
        5, ge=1, description="Failures in a row that open a service's breaker."
    )
    breaker_failure_rate: float = Field(
        0.5, gt=0.0, le=1.0, description="Failure rate over the window that opens the breaker."
    )
    breaker_window: int = Field(20, ge=1, description="Recent calls the failure rate is over.")
    breaker_min_calls: int = Field(
        10, ge=1, description="Calls in the window before the failure rate can open it."
    )
    breaker_open_s: float = Field(
        5.0, gt=0, description="Seconds an open breaker fails fast before it lets probes through."
    )
    breaker_half_open_probes: int = Field(
        1, ge=1, description="Successful probes that close a half-open breaker."
    )
