from pathlib import Path

import numpy as np
import pytest

from shared import minilm


def test_weights_checksum_is_enforced(tmp_path: Path) -> None:
    assert minilm.verify_weights() == minilm.model_dir()
    (tmp_path / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(minilm.WeightsIntegrityError, match="refusing"):
        minilm.verify_weights(tmp_path)


def test_text_encoder_gives_unit_vectors_that_mean_something() -> None:
    enc = minilm.TextEncoder()
    v = enc.encode(["red ceramic coffee mug", "blue porcelain tea cup", "garden hose reel"])
    assert v.shape == (3, minilm.HIDDEN_SIZE)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
