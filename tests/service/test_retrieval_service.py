"""RetrievalService through a real grpc.aio server on 127.0.0.1:0 with real FAISS indexes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.orchestrator.clients import retrieval_from_proto
from services.orchestrator.domain import CandidateSource
from services.retrieval.app import RetrievalApp, build_retrieval
from services.retrieval.config import RetrievalSettings
from services.retrieval.servicer import RetrievalServicer
from shared.artefacts.retrieval import (
    LATEST,
    CollaborativeFactors,
    RetrievalArtefact,
    save_artefact,
    set_latest_version,
)
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import retrieval_pb2 as pb
from shared.gen.acme.recsys.v1 import retrieval_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
DIM = 8


def _artefact(n: int, dim: int, seed: int, dataset: str = "unit") -> RetrievalArtefact:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return RetrievalArtefact(
        item_ids=[f"item-{k:05d}" for k in range(n)],
        item_vectors=vectors,
        user_weight=np.eye(dim, dtype=np.float32),
        user_bias=np.zeros(dim, dtype=np.float32),
        recency_decay=0.8,
        max_history=10,
        popularity=rng.integers(0, 50, n),
        meta={"dataset": dataset, "seed": seed, "created_at": "2026-01-01T00:00:00+00:00"},
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    save_artefact(_artefact(3000, DIM, 1), tmp_path, "v2", set_latest=False)
    save_artefact(_artefact(300, DIM, 0), tmp_path, "v1")
    return tmp_path


@dataclass
class Running:
    app: RetrievalApp
    stub: retrieval_pb2_grpc.RetrievalServiceStub
    health: health_pb2_grpc.HealthStub

    @property
    def servicer(self) -> RetrievalServicer:
        return self.app.servicer


@contextlib.asynccontextmanager
async def _start(settings: RetrievalSettings) -> AsyncIterator[Running]:
    async with (
        build_retrieval(settings) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        yield Running(
            app,
            retrieval_pb2_grpc.RetrievalServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )


def _settings(root: Path, **overrides: float) -> RetrievalSettings:
    return RetrievalSettings(
        port=0,
        artefact_root=str(root),
        max_n=500,
        executor_workers=2,
        grace_period_s=0.2,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def two_tower_only(root: Path) -> AsyncIterator[Running]:
    """LATEST (v1, no ALS factors) served with the history source switched off."""
    async with _start(_settings(root, weight_history=0.0)) as running:
        yield running


@pytest.fixture
async def unloaded(root: Path) -> AsyncIterator[Running]:
    """Started before any version is published: no LATEST, so nothing loads at start."""
    (root / LATEST).unlink()
    async with _start(_settings(root)) as running:
        yield running


@pytest.fixture
async def svc(root: Path) -> AsyncIterator[Running]:
    """Started with LATEST naming v1, which start loads."""
    async with _start(_settings(root)) as running:
        yield running


async def _ready(running: Running) -> int:
    reply = await running.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    return int(reply.status)


async def test_readiness_turns_serving_only_after_the_index_is_loaded(
    unloaded: Running, root: Path
) -> None:
    assert await _ready(unloaded) == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unloaded.stub.RetrieveCandidates(
            pb.RetrieveCandidatesRequest(history=pb.UserHistory(item_ids=["item-00001"]), n=5)
        )
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    set_latest_version(root, "v1")
    await unloaded.servicer.load("")
    assert await _ready(unloaded) == health_pb2.HealthCheckResponse.SERVING
    info = await unloaded.stub.GetIndexInfo(pb.GetIndexInfoRequest())
    assert (info.index_version, info.index_type, info.item_count, info.dimension) == (
        "v1",
        "flat",
        300,
        DIM,
    )


async def test_history_retrieval_is_the_exact_top_n_with_exclusions(
    two_tower_only: Running, root: Path
) -> None:
    svc = two_tower_only
    art = _artefact(300, DIM, 0)
    history = ["item-00010", "unknown", "item-00020", "item-00030"]
    expected_scores = art.item_vectors @ art.user_vector(history)
    order = [art.item_ids[i] for i in np.argsort(-expected_scores)]
    excluded = order[:3]
    reply = await svc.stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(
            history=pb.UserHistory(item_ids=history),
            n=20,
            excluded_item_ids=excluded,
            include_embeddings=True,
        )
    )
    assert [c.item_id for c in reply.candidates] == order[3:23]
    assert reply.index_version == "v1"
    assert not reply.cold_start
    first = reply.candidates[0]
    row = art.row(first.item_id)
    assert row is not None
    np.testing.assert_allclose(first.embedding, art.item_vectors[row], rtol=1e-6)
    assert first.score == pytest.approx(float(expected_scores[row]), rel=1e-5)


def _label(source: int) -> str:
    return pb.CandidateSource.Name(source).removeprefix("CANDIDATE_SOURCE_").lower()


def _with_factors(art: RetrievalArtefact, factors: int, seed: int) -> RetrievalArtefact:
    rng = np.random.default_rng(seed)
    art.cf = CollaborativeFactors(
        rng.standard_normal((len(art.item_ids), factors)).astype(np.float32), 0.5, 2.0
    )
    return art


async def test_history_candidates_come_from_every_source_with_tags_and_scores(
    root: Path,
) -> None:
    art = _with_factors(_artefact(300, DIM, 5), 6, 9)
    save_artefact(art, root, "v3-cf", set_latest=False)
    history = ["item-00010", "item-00020", "item-00010", "item-00030"]
    excluded = ["item-00020"]
    tt = art.item_vectors @ art.user_vector(history)
    als = art.cf.item_factors @ art.cf_user_vector(history)  # type: ignore[union-attr]
    async with _start(_settings(root, weight_collaborative=2.0)) as running:
        reply = await running.stub.LoadIndexVersion(
            pb.LoadIndexVersionRequest(index_version="v3-cf")
        )
        info = await running.stub.GetIndexInfo(pb.GetIndexInfoRequest())
        assert list(info.sources) == [
            pb.CANDIDATE_SOURCE_TWO_TOWER,
            pb.CANDIDATE_SOURCE_COLLABORATIVE,
            pb.CANDIDATE_SOURCE_HISTORY,
        ]
        reply = await running.stub.RetrieveCandidates(
            pb.RetrieveCandidatesRequest(
                history=pb.UserHistory(item_ids=history), n=30, excluded_item_ids=excluded
            )
        )
    assert reply.index_version == "v3-cf"
    ids = [c.item_id for c in reply.candidates]
    assert len(ids) == len(set(ids)) == 30
    assert "item-00020" not in ids
    tagged: dict[int, set[str]] = {}
    for c in reply.candidates:
        assert list(c.sources) == [s.source for s in c.source_scores]
        for s in c.source_scores:
            tagged.setdefault(s.source, set()).add(c.item_id)
            row = art.row(c.item_id)
            assert row is not None
            if s.source == pb.CANDIDATE_SOURCE_TWO_TOWER:
                assert s.score == pytest.approx(float(tt[row]), rel=1e-4, abs=1e-5)
            elif s.source == pb.CANDIDATE_SOURCE_COLLABORATIVE:
                assert s.score == pytest.approx(float(als[row]), rel=1e-4, abs=1e-5)
                # its rank is its place in the ALS order of the non-excluded items
                order = [i for i in np.argsort(-als) if art.item_ids[i] not in excluded]
                assert order.index(row) + 1 == s.rank
    assert set(tagged) == {
        pb.CANDIDATE_SOURCE_TWO_TOWER,
        pb.CANDIDATE_SOURCE_COLLABORATIVE,
        pb.CANDIDATE_SOURCE_HISTORY,
    }
    assert tagged[pb.CANDIDATE_SOURCE_HISTORY] == {"item-00010", "item-00030"}
    scores = [c.score for c in reply.candidates]
    assert scores == sorted(scores, reverse=True)
    # the ALS top items (excluded ones aside) made it into the merged list
    als_top = [art.item_ids[i] for i in np.argsort(-als) if art.item_ids[i] not in excluded][:5]
    assert set(als_top) <= set(ids)
    # The orchestrator's domain keeps every tag, score and rank (ranking features).
    domain = retrieval_from_proto(reply)
    for c, d in zip(reply.candidates, domain.candidates, strict=True):
        assert [(s.source.value, s.score, s.rank) for s in d.source_scores] == [
            (_label(s.source), s.score, s.rank) for s in c.source_scores
        ]
    assert {s.source for d in domain.candidates for s in d.source_scores} == set(CandidateSource)


async def test_a_version_without_factors_serves_two_tower_and_history(svc: Running) -> None:
    info = await svc.stub.GetIndexInfo(pb.GetIndexInfoRequest())
    assert list(info.sources) == [pb.CANDIDATE_SOURCE_TWO_TOWER, pb.CANDIDATE_SOURCE_HISTORY]
    reply = await svc.stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(history=pb.UserHistory(item_ids=["item-00007"]), n=10)
    )
    found = {s for c in reply.candidates for s in c.sources}
    assert found == {pb.CANDIDATE_SOURCE_TWO_TOWER, pb.CANDIDATE_SOURCE_HISTORY}
    assert "item-00007" in [c.item_id for c in reply.candidates]


async def test_vector_query_ranks_by_inner_product(svc: Running) -> None:
    art = _artefact(300, DIM, 0)
    vector = art.item_vectors[42] * 3.0
    reply = await svc.stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(user_vector=pb.UserVector(values=vector.tolist()), n=5)
    )
    assert reply.candidates[0].item_id == "item-00042"
    scores = [c.score for c in reply.candidates]
    assert scores == sorted(scores, reverse=True)
    assert not reply.candidates[0].embedding


@pytest.mark.parametrize("history", [["nobody-knows-this"], []])
async def test_unknown_history_gets_the_catalog_order_never_the_raw_counts(
    svc: Running, history: list[str]
) -> None:
    art = _artefact(300, DIM, 0)
    catalog = sorted(art.item_ids)[:11]
    reply = await svc.stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(
            history=pb.UserHistory(item_ids=history), n=10, excluded_item_ids=[catalog[0]]
        )
    )
    assert reply.cold_start
    assert [c.item_id for c in reply.candidates] == catalog[1:]
    assert all(c.score == 0.0 for c in reply.candidates)


def _req(**kwargs: object) -> pb.RetrieveCandidatesRequest:
    return pb.RetrieveCandidatesRequest(**kwargs)  # type: ignore[arg-type]


BAD_REQUESTS = [
    (_req(history=pb.UserHistory(item_ids=["item-00001"]), n=0), "n must be at least 1"),
    (_req(history=pb.UserHistory(item_ids=["item-00001"]), n=-3), "n must be at least 1"),
    (_req(history=pb.UserHistory(item_ids=["item-00001"]), n=501), "n must be at most 500"),
    (_req(history=pb.UserHistory(item_ids=["item-00001"]), n=2**31 - 1), "at most 500"),
    (_req(n=5), "query is required"),
    (_req(user_vector=pb.UserVector(values=[1.0] * (DIM + 1)), n=5), "dimension is 8"),
    (_req(user_vector=pb.UserVector(values=[]), n=5), "dimension is 8"),
    (_req(user_vector=pb.UserVector(values=[float("nan")] * DIM), n=5), "NaN or infinite"),
    (_req(user_vector=pb.UserVector(values=[float("inf")] + [0.0] * 7), n=5), "NaN"),
    (_req(user_vector=pb.UserVector(values=[0.0] * DIM), n=5), "all zeros"),
    (
        _req(history=pb.UserHistory(item_ids=["a"]), n=5, excluded_item_ids=["x"] * 1001),
        "excluded_item_ids has 1001 ids",
    ),
    (_req(history=pb.UserHistory(item_ids=["a"] * 1001), n=5), "history.item_ids has 1001"),
]


@pytest.mark.parametrize(("request_", "message"), BAD_REQUESTS)
async def test_bad_requests_are_invalid_argument(
    svc: Running, request_: pb.RetrieveCandidatesRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await svc.stub.RetrieveCandidates(request_, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


async def test_item_embeddings_report_missing_ids(svc: Running) -> None:
    reply = await svc.stub.GetItemEmbeddings(
        pb.GetItemEmbeddingsRequest(item_ids=["item-00003", "ghost", "item-00001"])
    )
    assert [e.item_id for e in reply.embeddings] == ["item-00003", "item-00001"]
    assert list(reply.missing_item_ids) == ["ghost"]
    assert len(reply.embeddings[0].values) == DIM
    assert reply.index_version == "v1"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await svc.stub.GetItemEmbeddings(pb.GetItemEmbeddingsRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await svc.stub.GetItemEmbeddings(pb.GetItemEmbeddingsRequest(item_ids=["x"] * 1001))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_load_index_version_errors_keep_the_served_index(svc: Running, root: Path) -> None:
    cases = [
        ("v404", grpc.StatusCode.NOT_FOUND),
        ("../v1", grpc.StatusCode.INVALID_ARGUMENT),
        ("broken", grpc.StatusCode.FAILED_PRECONDITION),
    ]
    broken = save_artefact(_artefact(10, DIM, 3), root, "broken", set_latest=False)
    (broken / "user_tower.npz").write_bytes(b"garbage")
    for version, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.LoadIndexVersion(pb.LoadIndexVersionRequest(index_version=version))
        assert err.value.code() == code
        assert str(root) not in (err.value.details() or "")
    info = await svc.stub.GetIndexInfo(pb.GetIndexInfoRequest())
    assert info.index_version == "v1"


async def test_hot_swap_drops_no_request(root: Path) -> None:
    settings = RetrievalSettings(
        port=0, artefact_root=str(root), index_type="hnsw", hnsw_ef_construction=64,
        executor_workers=2, grace_period_s=0.2,
    )  # fmt: skip
    async with _start(settings) as running:
        request = pb.RetrieveCandidatesRequest(
            history=pb.UserHistory(item_ids=["item-00001", "item-00002"]), n=50
        )
        swapped = asyncio.Event()
        versions: list[str] = []

        async def fire() -> None:
            # Keep requests in flight until the swap is done, then a few more.
            rounds_after = 0
            while rounds_after < 3:
                replies = await asyncio.gather(
                    *(running.stub.RetrieveCandidates(request, timeout=10) for _ in range(8))
                )
                versions.extend(r.index_version for r in replies)
                assert all(len(r.candidates) == 50 for r in replies)
                if swapped.is_set():
                    rounds_after += 1

        async def swap() -> pb.LoadIndexVersionResponse:
            return await running.stub.LoadIndexVersion(
                pb.LoadIndexVersionRequest(index_version="v2")
            )

        load_task = asyncio.create_task(swap())
        fire_task = asyncio.create_task(fire())
        reply = await load_task
        swapped.set()
        await fire_task
        assert (reply.previous_version, reply.index_version) == ("v1", "v2")
        assert versions.count("v1") >= 8
        assert versions[-8:] == ["v2"] * 8
        info = await running.stub.GetIndexInfo(pb.GetIndexInfoRequest())
        assert (info.index_version, info.index_type, info.item_count) == ("v2", "hnsw", 3000)


async def test_poll_latest_swaps_when_latest_moves(svc: Running, root: Path) -> None:
    assert not await svc.servicer.poll_latest()
    set_latest_version(root, "v2")
    assert await svc.servicer.poll_latest()
    info = await svc.stub.GetIndexInfo(pb.GetIndexInfoRequest())
    assert info.index_version == "v2"
    (root / LATEST).unlink()
    assert not await svc.servicer.poll_latest()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_module_entry_point_serves_and_stops_on_sigterm(root: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "RECSYS_RETRIEVAL_PORT": str(port),
        "RECSYS_RETRIEVAL_ARTEFACT_ROOT": str(root),
        "RECSYS_RETRIEVAL_TRACES_DIR": str(tmp_path / "traces"),
        "RECSYS_RETRIEVAL_GRACE_PERIOD_S": "0.5",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.retrieval",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with create_channel(f"127.0.0.1:{port}", max_attempts=1) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = None
            for _ in range(150):
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    status = reply.status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
            assert status == health_pb2.HealthCheckResponse.SERVING
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            reply = await stub.RetrieveCandidates(
                pb.RetrieveCandidatesRequest(history=pb.UserHistory(item_ids=["item-00005"]), n=3)
            )
            assert reply.index_version == "v1"
            assert len(reply.candidates) == 3
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, out.decode()[-2000:]
        assert b"item-00005" not in out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
