"""Builds the ranker's domain objects from settings; used by __main__ and the tests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from services.ranker.clients import TritonBackend
from services.ranker.config import RankerSettings
from services.ranker.scorer import LocalBackend, Ranker, ScoringBackend

SERVICE_NAME = "acme.recsys.v1.RankerService"


def build_ranker(settings: RankerSettings, executor: ThreadPoolExecutor) -> Ranker:
    """Tokenizer and version from the artefact; the backend the settings select."""
    from services.ranker.model import load_artefact, load_tokenizer

    backend: ScoringBackend
    if settings.backend == "local":
        import torch

        torch.set_num_threads(settings.torch_threads)
        artefact = load_artefact(settings.model_dir, device=settings.device)
        tokenizer, meta = artefact.tokenizer, artefact.meta
        backend = LocalBackend(artefact.model, executor)
    else:
        tokenizer, meta = load_tokenizer(settings.model_dir)
        backend = TritonBackend(settings.triton_url, settings.model_name)
    return Ranker(
        tokenizer,
        backend,
        executor,
        max_batch=settings.max_batch,
        max_text_tokens=settings.max_text_tokens,
        model_name=settings.model_name,
        model_version=str(meta["version"]),
    )
