"""The cross-encoder, its tokenisation, artefacts and the candidate sources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from offline.ranker.candidates import CooccurrenceCandidates, baskets
from services.ranker.model import (
    RankerArtefact,
    create_untrained_artefact,
    encode_pairs,
    load_artefact,
    resolve_model_dir,
    score_arrays,
)
from shared.data.types import EVENT_PURCHASE, EVENT_VIEW, Interaction


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> RankerArtefact:
    torch.set_num_threads(1)  # see RankerSettings.torch_threads
    root = tmp_path_factory.mktemp("ranker")
    create_untrained_artefact(root, "v-test", seed=3, max_length=32)
    return load_artefact(root)


def test_latest_names_the_version_and_reload_scores_identically(
    artefact: RankerArtefact, tmp_path: Path
) -> None:
    assert artefact.version == "v-test"
    assert (artefact.path.parent / "LATEST").read_text().strip() == "v-test"
    arrays = encode_pairs(artefact.tokenizer, ["recent: red mug"] * 2, ["teapot", "kite"], 32)
    again = load_artefact(artefact.path)
    np.testing.assert_array_equal(
        score_arrays(artefact.model, arrays), score_arrays(again.model, arrays)
    )


def test_same_seed_same_head(tmp_path: Path, artefact: RankerArtefact) -> None:
    create_untrained_artefact(tmp_path, "again", seed=3, max_length=32)
    other = load_artefact(tmp_path / "again")
    arrays = encode_pairs(artefact.tokenizer, ["recent: tea"], ["green tea"], 32)
    np.testing.assert_allclose(
        score_arrays(artefact.model, arrays), score_arrays(other.model, arrays), atol=1e-6
    )


def test_long_pairs_are_truncated_and_padded_to_multiples_of_eight(
    artefact: RankerArtefact,
) -> None:
    arrays = encode_pairs(
        artefact.tokenizer, ["recent: " + "mug " * 500, "recent: tea"], ["kite " * 300, "x"], 40
    )
    assert arrays["input_ids"].shape == (2, 40)
    assert all(a.dtype == np.int64 for a in arrays.values())
    short = encode_pairs(artefact.tokenizer, ["a"], ["b"], 64)
    assert short["input_ids"].shape[1] % 8 == 0
    assert short["input_ids"].shape[1] < 64
    assert score_arrays(artefact.model, arrays).shape == (2,)


def test_padding_does_not_change_scores(artefact: RankerArtefact) -> None:
    alone = encode_pairs(artefact.tokenizer, ["recent: mug"], ["teapot"], 64)
    padded = encode_pairs(artefact.tokenizer, ["recent: mug", "x " * 40], ["teapot", "y"], 64)
    assert padded["input_ids"].shape[1] > alone["input_ids"].shape[1]
    np.testing.assert_allclose(
        score_arrays(artefact.model, alone)[0], score_arrays(artefact.model, padded)[0], atol=1e-5
    )


def test_encode_pairs_rejects_mismatched_lengths(artefact: RankerArtefact) -> None:
    with pytest.raises(ValueError, match="same length"):
        encode_pairs(artefact.tokenizer, ["a", "b"], ["c"], 16)


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train one"):
        resolve_model_dir(tmp_path)
    (tmp_path / "LATEST").write_text("gone\n")
    with pytest.raises(FileNotFoundError):
        resolve_model_dir(tmp_path)


def test_text_format_mismatch_refuses_to_load(artefact: RankerArtefact, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    meta = dict(artefact.meta, text_format_version=0)
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="text format"):
        load_artefact(folder)


def _buy(user: str, item: str, minutes: int, kind: str = EVENT_PURCHASE) -> Interaction:
    return Interaction(
        user, item, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes), kind
    )


def test_baskets_split_on_time_gaps_and_ignore_views() -> None:
    log = [
        _buy("u", "a", 0),
        _buy("u", "b", 5),
        _buy("u", "a", 6),
        _buy("u", "v", 7, EVENT_VIEW),
        _buy("u", "c", 200),
    ]
    assert baskets(log) == {"u": [["a", "b"], ["c"]]}


def test_cooccurrence_prefers_neighbours_then_backs_off_to_popularity() -> None:
    log = [
        _buy("u1", "a", 0),
        _buy("u1", "b", 1),
        _buy("u2", "a", 0),
        _buy("u2", "b", 1),
        _buy("u3", "a", 0),
        _buy("u3", "c", 1),
        _buy("u4", "d", 0),
        _buy("u5", "d", 0),
        _buy("u6", "d", 0),
        _buy("u7", "d", 0),
    ]
    source = CooccurrenceCandidates(log)
    assert source.candidates(["a"], 3) == ["b", "c", "d"]
    assert "a" not in source.candidates(["a"], 10)
    assert source.candidates([], 1) == ["d"]
