"""Settings of the ranker service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class RankerSettings(ServiceSettings):
    """Env vars ``RECSYS_RANKER_*``; tests pass keyword arguments."""

    model_config = SettingsConfigDict(env_prefix="RECSYS_RANKER_", extra="ignore")

    port: int = Field(50054, ge=0, le=65535)
    backend: Literal["triton", "local"] = Field(
        "local",
        description="triton: score on the Triton server at triton_url; local: score with the "
        "torch model in-process (the embedded default, no Triton needed).",
    )
    triton_url: str = Field("127.0.0.1:8001", description="host:port of Triton's gRPC endpoint.")
    model_name: str = Field("ranker_bert", description="Model name in the Triton repository.")
    model_dir: str = Field(
        "var/models/ranker",
        description="Ranker artefact folder, or the root whose LATEST names one. Both backends "
        "read the tokenizer and version from it; the local backend also the weights.",
    )
    ranking_model_dir: str = Field(
        "var/models/ltr",
        description="Learned ranking model folder (LightGBM, offline/ranker/ltr.py), or the "
        "root whose LATEST names one. When there is none, the ranker returns the "
        "cross-encoder's scores only and the orchestrator falls back to its fixed blend.",
    )
    max_batch: int = Field(
        64, ge=1, le=512, description="Pairs per model call; longer candidate lists are split."
    )
    max_candidates: int = Field(2000, ge=1, description="Most candidates in one request.")
    max_text_tokens: int = Field(
        64,
        ge=16,
        le=512,
        description="Most tokens of a (context, item) pair; the artefact's trained length "
        "(meta.json max_length) when that is shorter. Longer pairs are truncated, the "
        "context first.",
    )
    request_timeout_s: float = Field(
        2.0, gt=0, description="Budget of a request when the caller sends no deadline (or more)."
    )
    readiness_poll_s: float = Field(
        2.0, gt=0, description="How often the model's readiness on Triton is checked."
    )
    device: str = Field("cpu", description="torch device of the local backend.")
    torch_threads: int = Field(
        1,
        ge=1,
        description="torch intra-op threads of the local backend. One by default: on a small "
        "shared CPU, OpenMP threads that wait on each other run up to 10x slower than one.",
    )
