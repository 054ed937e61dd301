"""Experiments: deterministic, sticky assignment from the pseudonym and the salt; a config
that refuses mistakes with a message naming them; hot reload through the switches' watcher,
where a bad file keeps the last good configuration."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import RecommendQuery, RerankMethod
from services.orchestrator.experiments import (
    NO_EXPERIMENTS,
    ExperimentBoard,
    ExperimentsConfig,
    apply,
    assign,
)
from services.orchestrator.switches import StageSwitches

PSEUDONYMS = [f"v1.pseudonym-{i:05d}" for i in range(20_000)]


def _config(version: str = "v1", salt: str = "salt-aaaa-1", **variant: Any) -> dict[str, Any]:
    return {
        "version": version,
        "experiments": [
            {
                "name": "diversity",
                "salt": salt,
                "variants": [
                    {"name": "control", "share": 0.3},
                    {"name": "mmr", "share": 0.2, "method": "mmr", "tradeoff": 0.9, **variant},
                ],
            }
        ],
    }


def _variants(config: ExperimentsConfig) -> list[str | None]:
    return [next((a.variant.name for a in assign(config, p)), None) for p in PSEUDONYMS]


def test_assignment_is_deterministic_sticky_and_follows_the_shares() -> None:
    first = _variants(ExperimentsConfig.model_validate(_config()))
    # A second parse of the same file (another replica, a restart) assigns everyone alike.
    again = _variants(ExperimentsConfig.model_validate(json.loads(json.dumps(_config()))))
    assert first == again
    n = len(PSEUDONYMS)
    assert abs(first.count("control") / n - 0.3) < 0.015
    assert abs(first.count("mmr") / n - 0.2) < 0.015
    assert abs(first.count(None) / n - 0.5) < 0.015
    # A new salt reshuffles: about as many keep their arm as chance would give.
    other = _variants(ExperimentsConfig.model_validate(_config(salt="salt-bbbb-2")))
    kept = sum(a == b for a, b in zip(first, other, strict=True)) / n
    assert abs(kept - (0.3**2 + 0.2**2 + 0.5**2)) < 0.02
    # Growing the treatment's share only moves shoppers from outside into it: those already
    # in an arm stay there (the shares cut [0, 1) in order).
    grown = _config()
    grown["experiments"][0]["variants"][1]["share"] = 0.4
    wider = _variants(ExperimentsConfig.model_validate(grown))
    assert all(b == a for a, b in zip(first, wider, strict=True) if a is not None)


def test_a_variant_overrides_the_request_and_the_switches() -> None:
    config = ExperimentsConfig.model_validate(_config(candidate_count=30, ranker_enabled=False))
    pseudonym = next(p for p in PSEUDONYMS if _variants_of(config, p) == "mmr")
    query = RecommendQuery("ref", 5, RerankMethod.DPP, 0.1)
    switches = StageSwitches(True, RerankMethod.UNSPECIFIED, 100)
    q, s = apply(assign(config, pseudonym), query, switches)
    assert (q.method, q.tradeoff, q.k) == (RerankMethod.MMR, 0.9, 5)
    assert (s.ranker_enabled, s.candidate_count) == (False, 30)
    assert s.ranking_model == ""  # not set by the variant: the ranker's default
    named = ExperimentsConfig.model_validate(_config(ranking_model="ltr-2026-12"))
    _, s = apply(assign(named, pseudonym), query, switches)
    assert s.ranking_model == "ltr-2026-12"
    assert s.label.endswith(";ranking_model=ltr-2026-12")
    with pytest.raises(ValueError, match="ranking_model"):
        ExperimentsConfig.model_validate(_config(ranking_model="../elsewhere"))
    control = next(p for p in PSEUDONYMS if _variants_of(config, p) == "control")
    assert apply(assign(config, control), query, switches) == (query, switches)


def _variants_of(config: ExperimentsConfig, pseudonym: str) -> str | None:
    return next((a.variant.name for a in assign(config, pseudonym)), None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["experiments"][0]["variants"][0].update(share=0.9), "add up to 1.1"),
        (lambda c: c["experiments"][0]["variants"][1].update(name="control"), "repeats"),
        (lambda c: c["experiments"][0]["variants"][1].update(methd="mmr"), "methd"),
        (lambda c: c["experiments"][0]["variants"][1].update(tradeoff=2), "tradeoff"),
        (lambda c: c["experiments"][0].update(salt="short"), "salt"),
        (lambda c: c.pop("version"), "version"),
        (
            lambda c: c["experiments"].append(
                {**c["experiments"][0], "name": "other", "salt": "salt-cccc-3"}
            ),
            "both set",
        ),
        (
            lambda c: c["experiments"].append({**c["experiments"][0], "name": "other"}),
            "reuses another experiment's salt",
        ),
    ],
)
def test_a_bad_config_is_refused_naming_the_mistake(change: Any, message: str) -> None:
    config = _config()
    change(config)
    with pytest.raises(ValidationError, match=message):
        ExperimentsConfig.model_validate(config)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, content: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(content)
    os.replace(tmp, path)  # as a ConfigMap update swaps the file


def test_the_board_reloads_on_change_and_keeps_the_last_good_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "experiments.json"
    clock = Clock()
    settings = OrchestratorSettings(experiments_file=str(path), experiments_poll_s=1.0)  # type: ignore[call-arg]
    board = ExperimentBoard(settings, clock=clock)
    assert board() == NO_EXPERIMENTS  # no file yet: no experiments
    _write(path, json.dumps(_config(version="v1")))
    clock.now += 1.0
    assert board().version == "v1"
    with caplog.at_level(logging.WARNING):
        _write(path, json.dumps(_config(version="v2", tradeoff=7)))
        clock.now += 1.0
        assert board().version == "v1"  # refused: the last good config stays
    assert board.error is not None
    assert "tradeoff" in board.error
    assert any("experiments file invalid" in r.getMessage() for r in caplog.records)
    _write(path, "{not json")
    clock.now += 1.0
    assert board().version == "v1"
    _write(path, json.dumps(_config(version="v3")))
    clock.now += 0.5
    assert board().version == "v1"  # not yet polled
    clock.now += 0.5
    assert board().version == "v3"
    assert board.error is None
    path.unlink()
    clock.now += 1.0
    assert board() == NO_EXPERIMENTS
