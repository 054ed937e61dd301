"""Stage switches: settings' values overlaid with an overrides file re-read on change, and
what the pipeline does with them (the in-memory services of test_orchestrator_degradation)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.orchestrator.domain import RerankMethod
from services.orchestrator.pipeline import Pipeline, PipelineMetrics
from services.orchestrator.switches import StageSwitches, SwitchBoard
from tests.unit.test_orchestrator_degradation import (
    Dependencies,
    FakeClock,
    Harness,
    _settings,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _write(path: Path, values: dict[str, object]) -> None:
    # Written to a new file then renamed over the old one, as a ConfigMap update swaps it.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values))
    os.replace(tmp, path)


def test_without_a_file_the_settings_values_apply(clock: FakeClock) -> None:
    board = SwitchBoard(_settings(ranker_enabled=False, candidate_count=7), clock=clock)
    assert board() == StageSwitches(False, RerankMethod.UNSPECIFIED, 7)
    assert board().label == "ranker=off;reranker_method=RERANK_METHOD_UNSPECIFIED;candidates=7"


def test_a_changed_file_takes_effect_after_the_poll_interval(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "switches.json"
    _write(path, {"default_reranker_method": "mmr"})
    board = SwitchBoard(_settings(switches_file=str(path), switches_poll_s=1.0), clock=clock)
    assert board() == StageSwitches(True, RerankMethod.MMR, 8)
    _write(path, {"ranker_enabled": False, "candidate_count": 30})
    clock.now += 0.5
    assert board().ranker_enabled  # not re-read yet
    clock.now += 0.5
    assert board() == StageSwitches(False, RerankMethod.UNSPECIFIED, 30)


def test_an_invalid_file_keeps_the_last_good_values_and_removal_restores_the_settings(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "switches.json"
    _write(path, {"ranker_enabled": False})
    board = SwitchBoard(_settings(switches_file=str(path)), clock=clock)
    assert not board().ranker_enabled
    for bad in ("{not json", json.dumps({"ranker_enabld": True}), json.dumps([1])):
        path.write_text(bad)
        assert not board.reload()
        assert not board().ranker_enabled
    _write(path, {"candidate_count": 0})
    assert not board.reload()
    path.unlink()
    assert board.reload()
    assert board() == StageSwitches.from_settings(_settings())


def _harness(deps: Dependencies, board: SwitchBoard) -> Harness:
    h = Harness(deps, _settings())
    h.pipeline = Pipeline(
        deps,
        h.popularity,
        _settings(),
        metrics_=PipelineMetrics(),
        tracer=h.pipeline._tracer,
        now=lambda: datetime(2026, 3, 1, 12, tzinfo=UTC),
        switches=board,
    )
    return h


async def test_the_switches_steer_the_pipeline_and_are_reported(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "switches.json"
    deps = Dependencies(clock)
    board = SwitchBoard(_settings(switches_file=str(path)), clock=clock)
    h = _harness(deps, board)
    await h.fill_cache()
    out = await h.recommend(method=RerankMethod.UNSPECIFIED)
    assert "score" in deps.called()
    assert "ranker_model" in out.versions
    assert out.versions["stage_switches"].startswith("ranker=on;")
    _write(path, {"ranker_enabled": False, "default_reranker_method": "mmr", "candidate_count": 5})
    assert board.reload()
    deps.calls.clear()
    deps.rerank_requests.clear()
    h.spans.clear()
    out = await h.recommend(method=RerankMethod.UNSPECIFIED)
    assert "score" not in deps.called()
    assert not out.degraded  # a decision, not a failure
    assert "ranker_model" not in out.versions
    assert out.versions["stage_switches"] == (
        "ranker=off;reranker_method=RERANK_METHOD_MMR;candidates=5"
    )
    assert deps.rerank_requests[0].method is RerankMethod.MMR
    assert len(deps.rerank_requests[0].candidates) == 5
    ranker_span = next(s for s in h.spans.get_finished_spans() if s.name == "orchestrator.ranker")
    assert [e.name for e in ranker_span.events] == ["switched_off"]
    # A method named by the request wins over the default.
    deps.rerank_requests.clear()
    await h.recommend(method=RerankMethod.DPP)
    assert deps.rerank_requests[0].method is RerankMethod.DPP
