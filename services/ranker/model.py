"""The cross-encoder: pretrained all-MiniLM-L6-v2 BertModel + a linear head -> one logit.

Both texts of a pair go through BERT together ([CLS] context [SEP] item [SEP]), so attention
can compare the shopper's history with the candidate word by word (Nogueira and Cho, 2019,
"Passage Re-ranking with BERT"). The head reads a masked mean of the last hidden states
(see CrossEncoder for which tokens), a better starting point than the [CLS] vector, which
all-MiniLM-L6-v2 never trained.

An artefact is a folder ``var/models/ranker/<version>/`` with ``model.safetensors`` (all
weights), ``config.json`` (BERT architecture), ``tokenizer/`` (the backbone's tokenizer files,
so serving never needs the backbone package) and ``meta.json``; ``var/models/ranker/LATEST``
holds the version name of the newest one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from services.ranker import versions
from shared import minilm
from shared.ranker_text import TEXT_FORMAT_VERSION

if TYPE_CHECKING:
    from transformers import BertConfig, BertModel, PreTrainedTokenizerBase

DEFAULT_MODEL_NAME = "ranker_bert"
DEFAULT_ROOT = Path("var/models/ranker")
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "logits"
WEIGHTS_FILE = "model.safetensors"


POOLINGS = ("item_mean", "mean")


class CrossEncoder(nn.Module):
    """BERT over a (context, item) pair -> relevance logit of shape (batch, 1).

    ``item_mean`` (default) averages the last hidden states of the item segment only
    (token_type_ids == 1; they have attended to the context): candidates of one shopper
    share the context, and a mean over the whole pair is dominated by it, which left
    fine-tuning on CPU budgets nearly flat. ``mean`` averages the whole pair (the pooling
    all-MiniLM-L6-v2 was pretrained with).
    """

    def __init__(
        self, backbone: BertModel, dropout: float = 0.1, pooling: str = "item_mean"
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}")
        super().__init__()
        self.pooling = pooling
        # The pooler (a tanh layer over [CLS]) is unused with mean pooling; dropping it keeps
        # it out of the weights, the ONNX graph and every forward pass.
        backbone.pooler = None
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.config.hidden_size, 1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
        ).last_hidden_state
        keep = attention_mask * token_type_ids if self.pooling == "item_mean" else attention_mask
        mask = keep.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        logits: torch.Tensor = self.head(self.dropout(pooled))
        return logits


def build_model(
    seed: int = 0, pooling: str = "item_mean"
) -> tuple[CrossEncoder, PreTrainedTokenizerBase]:
    """The pretrained, checksum-verified backbone with a freshly initialised head.

    ``seed`` fixes the head initialisation (and dropout masks drawn right after)."""
    backbone, tokenizer = minilm.load_backbone()
    torch.manual_seed(seed)
    return CrossEncoder(backbone, pooling=pooling), tokenizer


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    contexts: Sequence[str],
    items: Sequence[str],
    max_length: int,
) -> dict[str, np.ndarray]:
    """Token ids of the pairs as int64 arrays named like the model inputs.

    Over-long pairs are truncated (longest side first, so a long history gives way before
    the item text does). Padding goes to the longest pair rounded up to a multiple of 8:
    Triton only batches requests of equal shape, and a few length buckets let requests of
    similar length share a batch.
    """
    if len(contexts) != len(items):
        raise ValueError("contexts and items must have the same length")
    enc = tokenizer(
        list(contexts),
        list(items),
        padding=True,
        truncation="longest_first",
        max_length=max_length,
        pad_to_multiple_of=8,
        return_tensors="np",
    )
    return {name: np.ascontiguousarray(enc[name], dtype=np.int64) for name in INPUT_NAMES}


def score_arrays(model: CrossEncoder, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Eager torch logits (float32, shape (batch,)) of already tokenised pairs."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v).to(device) for k, v in arrays.items()})
    return out.squeeze(-1).float().cpu().numpy()


@dataclass
class RankerArtefact:
    """A loaded model folder."""

    path: Path
    model: CrossEncoder
    tokenizer: PreTrainedTokenizerBase
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def model_name(self) -> str:
        return str(self.meta.get("model_name", DEFAULT_MODEL_NAME))

    @property
    def max_length(self) -> int:
        return int(self.meta.get("max_length", 128))


def new_version(clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    return clock().strftime("%Y%m%dT%H%M%SZ")


def save_artefact(
    model: CrossEncoder,
    tokenizer: PreTrainedTokenizerBase,
    root: Path,
    version: str,
    meta: dict[str, Any],
    *,
    set_latest: bool = True,
) -> Path:
    """Write ``root/<version>/`` and, unless told otherwise, point ``root/LATEST`` at it."""
    from safetensors.torch import save_file

    folder = root / version
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / "config.json").write_text(model.backbone.config.to_json_string())
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    full_meta = {
        "version": version,
        "model_name": DEFAULT_MODEL_NAME,
        "backbone": {"name": minilm.MODEL_NAME, "sha256": minilm.WEIGHTS_SHA256},
        "pooling": model.pooling,
        "text_format_version": TEXT_FORMAT_VERSION,
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        **meta,
    }
    (folder / "meta.json").write_text(json.dumps(full_meta, indent=2, sort_keys=True) + "\n")
    if set_latest:
        set_latest_version(root, version)
    return folder


def set_latest_version(root: Path | str, version: str) -> None:
    """Point ``root/LATEST`` at an existing cross-encoder version (``--promote``); ValueError
    for a bad name or a missing version."""
    versions.set_latest(root, version, "cross-encoder")


def resolve_model_dir(path: Path | str) -> Path:
    """A version folder as given, or the one ``LATEST`` names when ``path`` is the root."""
    path = Path(path)
    if (path / "meta.json").exists():
        return path
    latest = path / "LATEST"
    if latest.exists():
        folder = path / latest.read_text().strip()
        if (folder / "meta.json").exists():
            return folder
    raise FileNotFoundError(
        f"no ranker model at {path}: expected meta.json or a LATEST file "
        "(train one with scripts/train_ranker.py)"
    )


def _bert_config(folder: Path) -> BertConfig:
    from transformers import BertConfig

    return BertConfig.from_json_file(str(folder / "config.json"))


def load_artefact(path: Path | str, device: str = "cpu") -> RankerArtefact:
    """Load a model folder (or the LATEST one under a root) in eval mode."""
    from safetensors.torch import load_file
    from transformers import BertModel

    folder = resolve_model_dir(path)
    tokenizer, meta = load_tokenizer(folder)
    backbone = BertModel(_bert_config(folder), add_pooling_layer=False)
    model = CrossEncoder(backbone, pooling=str(meta.get("pooling", "mean")))
    model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=True)
    model.to(device).eval()
    return RankerArtefact(folder, model, tokenizer, meta)


def load_tokenizer(path: Path | str) -> tuple[PreTrainedTokenizerBase, dict[str, Any]]:
    """The tokenizer and meta of an artefact without its weights (the Triton path)."""
    from transformers import AutoTokenizer

    folder = resolve_model_dir(path)
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("text_format_version") != TEXT_FORMAT_VERSION:
        raise ValueError(
            f"model {folder} was trained on text format {meta.get('text_format_version')}, "
            f"this code builds format {TEXT_FORMAT_VERSION}"
        )
    return AutoTokenizer.from_pretrained(str(folder / "tokenizer")), meta


def create_untrained_artefact(
    root: Path, version: str, *, seed: int = 0, max_length: int = 64, set_latest: bool = True
) -> Path:
    """An artefact of the pretrained backbone with a freshly initialised head.

    Its scores carry no learned relevance, but it is the real architecture and export path:
    tests and throughput benchmarks use it where training would cost minutes.
    """
    model, tokenizer = build_model(seed)
    meta = {"max_length": max_length, "trained": False, "seed": seed}
    return save_artefact(model.eval(), tokenizer, root, version, meta, set_latest=set_latest)
