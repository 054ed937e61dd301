"""Stage switches over gRPC: the orchestrator built through its composition root, over the
in-memory services of tests/unit/test_orchestrator_degradation, changes what it serves when
the overrides file changes, without a restart, and says so in the answer's versions."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from services.orchestrator.app import build_orchestrator
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.unit.test_orchestrator_degradation import SHOPPER, Dependencies, FakeClock, _settings


async def test_switching_the_ranker_off_takes_effect_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "switches.json"
    deps = Dependencies(FakeClock())
    settings = _settings(port=0, switches_file=str(path), switches_poll_s=0.05)
    async with (
        build_orchestrator(settings, backends=deps) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
        request = orchestrator_pb2.RecommendRequest(user_ref=SHOPPER, k=3)
        before = await stub.Recommend(request, timeout=5)
        assert before.versions["stage_switches"].startswith("ranker=on;")
        assert "ranker_model" in before.versions
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ranker_enabled": False, "candidate_count": 6}))
        os.replace(tmp, path)
        await asyncio.sleep(0.1)
        deps.calls.clear()
        after = await stub.Recommend(request, timeout=5)
    assert after.versions["stage_switches"].startswith("ranker=off;")
    assert after.versions["stage_switches"].endswith(";candidates=6")
    assert "ranker_model" not in after.versions
    assert not after.degraded_stages
    assert "score" not in deps.called()
    assert len(after.items) == 3
