"""The RankerService with a learned ranking model, on a real grpc.aio server (local torch
backend): each item comes back with the model's relevance and per-feature contributions, the
response names the model; without a model the response is the cross-encoder's alone.

The model is trained here by offline.ranker.ltr on the synthetic data (a few seconds), so the
artefact is the one the trainer writes, not a hand-made file."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from offline.ranker import ltr
from services.ranker.app import build_ranker, load_ranker
from services.ranker.config import RankerSettings
from services.ranker.learned import load_ranking_model
from services.ranker.model import create_untrained_artefact
from services.ranker.scorer import Ranker
from services.ranker.servicer import candidate_signals, shopper_signals
from shared.channels import create_channel
from shared.data.datasets import load_data
from shared.data.types import time_cut
from shared.gen.acme.recsys.v1 import common_pb2, ranker_pb2, ranker_pb2_grpc
from shared.ranking_features import FEATURE_SET_VERSION, FEATURES, build_features

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def local_ranker(tmp_path_factory: pytest.TempPathFactory) -> Ranker:
    root = tmp_path_factory.mktemp("ranker")
    create_untrained_artefact(root, "v-ltr", seed=3, max_length=32)
    settings = RankerSettings(backend="local", model_dir=str(root), max_text_tokens=32)
    return load_ranker(settings, ThreadPoolExecutor(2))


@pytest.fixture(scope="module")
def ltr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ltr")
    args = ["--data", "synthetic", "--output", str(root), "--version", "ltr-test", "--users", "150"]
    ltr.run(ltr.parse_args(args), progress=lambda _: None)
    return root


async def _stub(
    local_ranker: Ranker, ranking_model_dir: Path
) -> AsyncIterator[ranker_pb2_grpc.RankerServiceStub]:
    settings = RankerSettings(
        port=0,
        grace_period_s=0.2,
        request_timeout_s=10.0,
        backend="local",
        ranking_model_dir=str(ranking_model_dir),
    )
    async with (
        build_ranker(settings, ranker=local_ranker) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        yield ranker_pb2_grpc.RankerServiceStub(channel)


@pytest.fixture
async def learned_stub(
    local_ranker: Ranker, ltr_dir: Path
) -> AsyncIterator[ranker_pb2_grpc.RankerServiceStub]:
    async for stub in _stub(local_ranker, ltr_dir):
        yield stub


@pytest.fixture
async def plain_stub(
    local_ranker: Ranker, tmp_path: Path
) -> AsyncIterator[ranker_pb2_grpc.RankerServiceStub]:
    async for stub in _stub(local_ranker, tmp_path / "no-model"):
        yield stub


def _ts(when: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(when)
    return out


def _request(n: int = 6) -> ranker_pb2.ScoreCandidatesRequest:
    return ranker_pb2.ScoreCandidatesRequest(
        context=ranker_pb2.ShopperContext(
            recent_item_titles=["RED MUG", "TEA SET"],
            recent_categories=["home"],
            category_affinities=[
                common_pb2.CategoryAffinity(category="home", score=0.7),
                common_pb2.CategoryAffinity(category="toys", score=0.3),
            ],
            recent_item_prices=[2.5, 4.0],
            item_interactions=[
                common_pb2.ItemInteraction(
                    item_id="i0",
                    event_count=5,
                    purchased_quantity=3,
                    last_event_time=_ts(NOW - timedelta(days=2)),
                )
            ],
            request_time=_ts(NOW),
        ),
        candidates=[
            ranker_pb2.CandidateItem(
                item_id=f"i{i}",
                title=f"ITEM {i}",
                category_path=["home" if i % 2 else "toys", "sub"],
                price=1.0 + i,
                retrieval_score=1.0 - 0.1 * i,
                dp_popularity=10.0 * (n - i),
            )
            for i in range(n)
        ],
    )


async def test_learned_relevance_and_contributions_come_back(
    learned_stub: ranker_pb2_grpc.RankerServiceStub, ltr_dir: Path
) -> None:
    request = _request()
    response = await learned_stub.ScoreCandidates(request, timeout=30)
    assert response.ranking_model_version == "ltr-test"
    model = load_ranking_model(ltr_dir)
    assert model is not None
    # The served relevance is the model's over the shared builder's features of this request
    # and the cross-encoder scores the response carries.
    features = build_features(
        shopper_signals(request.context, lambda: NOW),
        candidate_signals(request),
        [s.score for s in response.scores],
    )
    expected = model.predict(features)
    assert [s.relevance for s in response.scores] == pytest.approx(
        [e.relevance for e in expected], abs=1e-9
    )
    bias = expected[0].relevance - sum(c.value for c in expected[0].contributions)
    for item in response.scores:
        names = [c.feature for c in item.contributions]
        assert sorted(names) == sorted(model.features)
        mags = [abs(c.value) for c in item.contributions]
        assert mags == sorted(mags, reverse=True)
        # Contributions plus the model's expected value are the relevance.
        assert sum(c.value for c in item.contributions) + bias == pytest.approx(item.relevance)
    # The repeat features reach the model: the shopper's own item (i0, five events) and a
    # fresh one differ in them, in the matrix the served relevance was shown to come from.
    # (Whether the model splits on them depends on its training data, not on the wiring.)
    own = FEATURES.index("own_event_count")
    assert features[0, own] > 0
    assert features[1, own] == 0
    assert not np.isnan([s.relevance for s in response.scores]).any()


def test_the_trainer_records_its_protocol_and_never_reaches_the_test_period(ltr_dir: Path) -> None:
    meta = json.loads((ltr_dir / "ltr-test" / "meta.json").read_text())
    assert meta["feature_set_version"] == FEATURE_SET_VERSION
    # Fitted without the cross-encoder score (no --bert-dir): the metadata says so.
    assert meta["features"] == [f for f in FEATURES if f != "bert_score_z"]
    assert meta["training"]["bert_model_version"] == ""
    cut = datetime.fromisoformat(meta["training"]["validation_cut"])
    assert cut < time_cut(load_data("synthetic"), 0.8)
    validation = meta["validation"]
    assert validation["shoppers"] > 0
    assert set(validation["ndcg@10"]) == {"ltr", "candidate_order"}
    low, high = (
        validation["ltr_minus"]["candidate_order"]["low"],
        validation["ltr_minus"]["candidate_order"]["high"],
    )
    assert low <= validation["ltr_minus"]["candidate_order"]["mean"] <= high


async def test_without_a_ranking_model_only_the_cross_encoder_answers(
    plain_stub: ranker_pb2_grpc.RankerServiceStub,
) -> None:
    response = await plain_stub.ScoreCandidates(_request(), timeout=30)
    assert response.ranking_model_version == ""
    assert response.model_version == "v-ltr"
    assert all(s.relevance == 0.0 and not s.contributions for s in response.scores)
    assert len({s.score for s in response.scores}) > 1


async def test_bad_signals_are_invalid_arguments(
    learned_stub: ranker_pb2_grpc.RankerServiceStub,
) -> None:
    request = _request()
    request.candidates[2].retrieval_score = float("nan")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await learned_stub.ScoreCandidates(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "candidates[2].retrieval_score" in (err.value.details() or "")
    request = _request()
    request.context.item_interactions[0].event_count = -1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await learned_stub.ScoreCandidates(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "item_interactions[0]" in (err.value.details() or "")


async def test_a_request_picks_another_model_version_or_none(
    local_ranker: Ranker, ltr_dir: Path, tmp_path: Path
) -> None:
    """An experiment variant's ``ranking_model``: another version under the same root is
    loaded and applied, "none" serves the cross-encoder alone, an unknown version is
    FAILED_PRECONDITION and a path-like name INVALID_ARGUMENT."""
    root = tmp_path / "ltr"
    shutil.copytree(ltr_dir, root)
    shutil.copytree(root / "ltr-test", root / "ltr-other")
    meta = json.loads((root / "ltr-other" / "meta.json").read_text())
    (root / "ltr-other" / "meta.json").write_text(json.dumps({**meta, "version": "ltr-other"}))
    async for stub in _stub(local_ranker, root):
        default = await stub.ScoreCandidates(_request(), timeout=30)
        assert default.ranking_model_version == "ltr-test"
        request = _request()
        request.ranking_model = "ltr-other"
        other = await stub.ScoreCandidates(request, timeout=30)
        assert other.ranking_model_version == "ltr-other"
        assert [s.relevance for s in other.scores] == pytest.approx(
            [s.relevance for s in default.scores]
        )  # the same booster under another name
        request.ranking_model = "none"
        none = await stub.ScoreCandidates(request, timeout=30)
        assert none.ranking_model_version == ""
        assert not any(s.contributions for s in none.scores)
        for name, code in (
            ("ltr-missing", grpc.StatusCode.FAILED_PRECONDITION),
            ("../ltr-test", grpc.StatusCode.INVALID_ARGUMENT),
        ):
            request.ranking_model = name
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ScoreCandidates(request, timeout=30)
            assert err.value.code() == code
