"""Item title embeddings from the pretrained all-MiniLM-L6-v2, cached on disk under var/.

Encoding a few thousand titles costs seconds on a CPU and loading the model about ten, so the
vectors are cached by a digest of (weights checksum, max length, titles): a re-run of training
on the same catalog reads a file instead of running BERT.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from shared.minilm import HIDDEN_SIZE, WEIGHTS_SHA256

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("var/cache/retrieval/titles")


class Encoder(Protocol):
    """What training needs from a text encoder: unit vectors of width HIDDEN_SIZE."""

    max_length: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _default_encoder() -> Encoder:
    from shared.minilm import TextEncoder

    return TextEncoder()


def cache_key(titles: Sequence[str], max_length: int) -> str:
    digest = hashlib.sha256(f"{WEIGHTS_SHA256}\n{max_length}\n".encode())
    for title in titles:
        digest.update(title.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def title_embeddings(
    titles: Sequence[str],
    *,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    encoder_factory: Callable[[], Encoder] = _default_encoder,
    max_length: int = 32,
) -> np.ndarray:
    """(len(titles), 384) float32 unit vectors, one per title, from the cache when present.

    Duplicate titles are encoded once. ``cache_dir=None`` disables the cache.
    """
    path = cache_dir / f"{cache_key(titles, max_length)}.npy" if cache_dir else None
    if path is not None and path.exists():
        cached = np.load(path)
        if cached.shape == (len(titles), HIDDEN_SIZE):
            log.info("title embeddings from cache", extra={"titles": len(titles)})
            return cached.astype(np.float32, copy=False)
    unique = sorted(set(titles))
    encoder = encoder_factory()
    encoder.max_length = max_length
    vectors = encoder.encode(unique)
    row = {title: i for i, title in enumerate(unique)}
    out = vectors[[row[t] for t in titles]].astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(path)
    log.info("title embeddings encoded", extra={"titles": len(titles), "unique": len(unique)})
    return out
