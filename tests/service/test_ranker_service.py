"""The RankerService on a real grpc.aio server with the local torch backend, and its error
paths: empty or bad candidates, oversize lists (split), over-long text (truncated), deadline,
and a Triton that is not there (UNAVAILABLE, readiness NOT_SERVING)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.triton_server import free_port
from services.ranker.app import build_ranker, load_ranker
from services.ranker.config import RankerSettings
from services.ranker.model import create_untrained_artefact, encode_pairs, score_arrays
from services.ranker.scorer import Candidate, LocalBackend, Ranker, ReadinessWatcher
from shared.channels import create_channel
from shared.deadline import Budget
from shared.errors import DeadlineExceeded
from shared.gen.acme.recsys.v1 import ranker_pb2, ranker_pb2_grpc
from shared.ranker_text import context_text, item_text


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ranker")
    create_untrained_artefact(root, "v-svc", seed=5, max_length=32)
    return root


@pytest.fixture(scope="module")
def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(2)


@pytest.fixture(scope="module")
def local_ranker(model_dir: Path, executor: ThreadPoolExecutor) -> Ranker:
    settings = RankerSettings(backend="local", model_dir=str(model_dir), max_text_tokens=32)
    return load_ranker(settings, executor)


class CountingBackend(LocalBackend):
    """The real local backend, recording the batch sizes it was given."""

    def __init__(self, inner: LocalBackend) -> None:
        super().__init__(inner._model, inner._executor)
        self.sizes: list[int] = []

    async def score(self, arrays: dict[str, np.ndarray], budget: Budget) -> np.ndarray:
        self.sizes.append(int(arrays["input_ids"].shape[0]))
        return await super().score(arrays, budget)


@pytest.fixture
async def local_stub(local_ranker: Ranker) -> AsyncIterator[ranker_pb2_grpc.RankerServiceStub]:
    settings = RankerSettings(
        port=0, grace_period_s=0.2, max_candidates=20, request_timeout_s=10.0, backend="local"
    )
    async with (
        build_ranker(settings, ranker=local_ranker) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        yield ranker_pb2_grpc.RankerServiceStub(channel)


def _request(n: int, title_repeat: int = 1) -> ranker_pb2.ScoreCandidatesRequest:
    return ranker_pb2.ScoreCandidatesRequest(
        context=ranker_pb2.ShopperContext(
            recent_item_titles=["RED RETROSPOT MUG", "TEA SET"], recent_categories=["home"]
        ),
        candidates=[
            ranker_pb2.CandidateItem(
                item_id=f"i{i}",
                title=f"ITEM NUMBER {i} " * title_repeat,
                category_path=["home", "kitchen"],
                price=1.5 * i,
            )
            for i in range(n)
        ],
    )


async def test_scores_in_request_order_match_the_model(
    local_stub: ranker_pb2_grpc.RankerServiceStub, local_ranker: Ranker
) -> None:
    request = _request(5)
    response = await local_stub.ScoreCandidates(request, timeout=30)
    assert [s.item_id for s in response.scores] == [f"i{i}" for i in range(5)]
    assert response.backend == "local"
    assert response.model_name == "ranker_bert"
    assert response.model_version == "v-svc"
    backend = local_ranker.backend
    assert isinstance(backend, LocalBackend)
    expected = score_arrays(
        backend._model,
        encode_pairs(
            local_ranker._tokenizer,
            [context_text(["RED RETROSPOT MUG", "TEA SET"], ["home"])] * 5,
            [item_text(c.title, c.category_path, c.price) for c in request.candidates],
            32,
        ),
    )
    np.testing.assert_allclose([s.score for s in response.scores], expected, atol=1e-5)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ranker_pb2.ScoreCandidatesRequest(), "candidates must not be empty"),
        (_request(21), "at most 20 candidates"),
        (
            ranker_pb2.ScoreCandidatesRequest(candidates=[ranker_pb2.CandidateItem(title="x")]),
            "candidates[0].item_id",
        ),
        (
            ranker_pb2.ScoreCandidatesRequest(
                candidates=[ranker_pb2.CandidateItem(item_id="a", price=float("nan"))]
            ),
            "candidates[0].price",
        ),
    ],
)
async def test_bad_requests_are_invalid_argument(
    local_stub: ranker_pb2_grpc.RankerServiceStub,
    request_: ranker_pb2.ScoreCandidatesRequest,
    message: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await local_stub.ScoreCandidates(request_, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


async def test_over_long_text_is_truncated_not_rejected(
    local_stub: ranker_pb2_grpc.RankerServiceStub,
) -> None:
    response = await local_stub.ScoreCandidates(_request(2, title_repeat=2000), timeout=30)
    assert len(response.scores) == 2
    assert all(np.isfinite(s.score) for s in response.scores)


async def test_oversize_lists_are_split_into_batches(
    local_ranker: Ranker, executor: ThreadPoolExecutor
) -> None:
    assert isinstance(local_ranker.backend, LocalBackend)
    counting = CountingBackend(local_ranker.backend)
    small = Ranker(
        local_ranker._tokenizer,
        counting,
        executor,
        max_batch=4,
        max_text_tokens=32,
        model_name="ranker_bert",
        model_version="v-svc",
    )
    cands = [Candidate(f"i{i}", f"ITEM {i}", ("home",), float(i)) for i in range(10)]
    budget = Budget.from_timeout(60)
    split = await small.score(["MUG"], ["home"], cands, budget)
    whole = await local_ranker.score(["MUG"], ["home"], cands, budget)
    assert sorted(counting.sizes) == [2, 4, 4]
    np.testing.assert_allclose(split, whole, atol=1e-5)


async def test_spent_budget_is_deadline_exceeded(local_ranker: Ranker) -> None:
    now = [0.0]
    budget = Budget.from_timeout(1.0, clock=lambda: now[0])
    now[0] = 5.0
    with pytest.raises(DeadlineExceeded):
        await local_ranker.score(["MUG"], [], [Candidate("a", "TEAPOT", (), 1.0)], budget)


async def test_triton_absent_means_unavailable_and_not_ready(model_dir: Path) -> None:
    settings = RankerSettings(
        port=0,
        grace_period_s=0.2,
        backend="triton",
        model_dir=str(model_dir),
        triton_url=f"127.0.0.1:{free_port()}",
        readiness_poll_s=0.05,
    )
    async with (
        build_ranker(settings) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        for _ in range(100):
            if app.watcher.ready is not None:
                break
            await asyncio.sleep(0.02)
        # The watcher has asked Triton and found no model: readiness stays NOT_SERVING.
        assert app.watcher.ready is False
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await ranker_pb2_grpc.RankerServiceStub(channel).ScoreCandidates(
                _request(3), timeout=10
            )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_readiness_follows_the_probe_both_ways() -> None:
    states = [True, True, False, True]
    seen: list[bool] = []

    async def probe() -> bool:
        state = states.pop(0) if states else True
        if not state:
            raise ConnectionError("model server gone")
        return state

    async def on_change(ready: bool) -> None:
        seen.append(ready)

    watcher = ReadinessWatcher(probe, on_change, 0.01)
    watcher.start()
    for _ in range(500):
        if len(seen) == 3:
            break
        await asyncio.sleep(0.01)
    await watcher.stop()
    assert seen == [True, False, True]
    assert watcher.ready is True


def test_pairs_are_served_at_the_artefacts_trained_length(
    tmp_path: Path, executor: ThreadPoolExecutor
) -> None:
    """A 48-token artefact is served 48-token pairs under the 64-token default cap, and the
    cap still wins when it is shorter."""
    create_untrained_artefact(tmp_path, "v48", seed=5, max_length=48)
    served = load_ranker(RankerSettings(backend="local", model_dir=str(tmp_path)), executor)
    assert RankerSettings().max_text_tokens == 64
    assert served.max_text_tokens == 48
    capped = RankerSettings(backend="local", model_dir=str(tmp_path), max_text_tokens=32)
    assert load_ranker(capped, executor).max_text_tokens == 32
