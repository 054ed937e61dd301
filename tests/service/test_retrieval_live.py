"""The live catalog of RetrievalService through a real grpc.aio server and real FAISS: items
added from their title embedding without retraining, items withdrawn at once, item-to-item
neighbours, and both surviving a hot swap of the index version."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from services.retrieval.app import build_retrieval
from services.retrieval.config import RetrievalSettings
from shared.artefacts.retrieval import RetrievalArtefact, normalise, save_artefact
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import retrieval_pb2 as pb
from shared.gen.acme.recsys.v1 import retrieval_pb2_grpc
from shared.minilm import HIDDEN_SIZE

DIM = 8
N = 300


def _artefact(seed: int, *, tower: bool = True) -> RetrievalArtefact:
    rng = np.random.default_rng(seed)
    return RetrievalArtefact(
        item_ids=[f"item-{k:05d}" for k in range(N)],
        item_vectors=normalise(rng.standard_normal((N, DIM)).astype(np.float32)),
        user_weight=np.eye(DIM, dtype=np.float32),
        user_bias=np.zeros(DIM, dtype=np.float32),
        recency_decay=0.8,
        max_history=10,
        popularity=rng.integers(0, 50, N),
        meta={"dataset": "unit", "seed": seed, "created_at": "2026-01-01T00:00:00+00:00"},
        text_weight=rng.standard_normal((DIM, HIDDEN_SIZE)).astype(np.float32) if tower else None,
        text_bias=rng.standard_normal(DIM).astype(np.float32) * 0.1 if tower else None,
    )


def _title(seed: int) -> np.ndarray:
    return normalise(np.random.default_rng(1000 + seed).standard_normal(HIDDEN_SIZE))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    save_artefact(_artefact(1), tmp_path, "v2", set_latest=False)
    save_artefact(_artefact(2, tower=False), tmp_path, "no-tower", set_latest=False)
    save_artefact(_artefact(0), tmp_path, "v1")
    return tmp_path


@contextlib.asynccontextmanager
async def _serve(
    root: Path, max_live_items: int = 50_000
) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    settings = RetrievalSettings(
        port=0,
        artefact_root=str(root),
        executor_workers=2,
        grace_period_s=0.2,
        max_live_items=max_live_items,
    )  # type: ignore[call-arg]
    async with (
        build_retrieval(settings) as app,
        create_channel(f"127.0.0.1:{app.port}", max_attempts=1) as channel,
    ):
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


@pytest.fixture
async def stub(root: Path) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    async with _serve(root) as running:
        yield running


def _ids(response: pb.RetrieveCandidatesResponse | pb.GetSimilarItemsResponse) -> list[str]:
    return [c.item_id for c in response.candidates]


async def _embedding(stub: retrieval_pb2_grpc.RetrievalServiceStub, item: str) -> list[float]:
    got = await stub.GetItemEmbeddings(pb.GetItemEmbeddingsRequest(item_ids=[item]))
    assert list(got.missing_item_ids) == [], item
    return list(got.embeddings[0].values)


async def test_an_added_item_is_retrievable_at_once_without_retraining(
    stub: retrieval_pb2_grpc.RetrievalServiceStub,
) -> None:
    title = _title(0)
    reply = await stub.UpsertItems(
        pb.UpsertItemsRequest(items=[pb.LiveItem(item_id="NEW-1", title_embedding=title)])
    )
    assert (reply.added_count, reply.updated_count, reply.restored_count) == (1, 0, 0)
    assert reply.index_version == "v1"
    # Its vector is the version's own title tower applied to the title embedding.
    art = _artefact(0)
    assert art.text_weight is not None
    assert art.text_bias is not None
    expected = normalise(art.text_weight @ title + art.text_bias)
    np.testing.assert_allclose(await _embedding(stub, "NEW-1"), expected, atol=1e-5)

    nearest = await stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(user_vector=pb.UserVector(values=expected), n=5)
    )
    assert _ids(nearest)[0] == "NEW-1"
    # A shopper who viewed it gets a (non cold-start) user vector from it.
    by_history = await stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(history=pb.UserHistory(item_ids=["NEW-1"]), n=5)
    )
    assert not by_history.cold_start
    assert _ids(by_history)[0] == "NEW-1"
    similar = await stub.GetSimilarItems(pb.GetSimilarItemsRequest(item_id="NEW-1", n=10))
    assert len(similar.candidates) == 10
    assert "NEW-1" not in _ids(similar)
    scores = [c.score for c in similar.candidates]
    assert scores == sorted(scores, reverse=True)
    info = await stub.GetIndexInfo(pb.GetIndexInfoRequest())
    assert (info.item_count, info.live_item_count, info.removed_item_count) == (N + 1, 1, 0)

    again = await stub.UpsertItems(
        pb.UpsertItemsRequest(items=[pb.LiveItem(item_id="NEW-1", title_embedding=_title(1))])
    )
    assert (again.added_count, again.updated_count) == (0, 1)
    # The new title replaces the vector; another added item keeps its own.
    await stub.UpsertItems(
        pb.UpsertItemsRequest(items=[pb.LiveItem(item_id="NEW-2", title_embedding=_title(2))])
    )
    for item, seed in (("NEW-1", 1), ("NEW-2", 2)):
        want = normalise(art.text_weight @ _title(seed) + art.text_bias)
        np.testing.assert_allclose(await _embedding(stub, item), want, atol=1e-5)


async def test_similar_items_are_the_exact_neighbours_of_a_trained_item(
    stub: retrieval_pb2_grpc.RetrievalServiceStub,
) -> None:
    art = _artefact(0)
    seed = "item-00007"
    scores = art.item_vectors @ art.item_vectors[art.row(seed) or 0]
    order = [art.item_ids[i] for i in np.argsort(-scores) if art.item_ids[i] != seed]
    reply = await stub.GetSimilarItems(
        pb.GetSimilarItemsRequest(item_id=seed, n=6, excluded_item_ids=[order[0]])
    )
    assert _ids(reply) == order[1:7]


async def test_a_withdrawn_item_leaves_every_answer_at_once_and_can_come_back(
    stub: retrieval_pb2_grpc.RetrievalServiceStub,
) -> None:
    await stub.UpsertItems(
        pb.UpsertItemsRequest(items=[pb.LiveItem(item_id="NEW-1", title_embedding=_title(0))])
    )
    target = "item-00042"
    vector = await _embedding(stub, target)
    new_vector = await _embedding(stub, "NEW-1")
    removed = await stub.RemoveItems(
        pb.RemoveItemsRequest(item_ids=[target, "NEW-1", "item-00000", "never-seen"])
    )
    assert removed.removed_count == 3

    for query in (vector, new_vector):
        got = await stub.RetrieveCandidates(
            pb.RetrieveCandidatesRequest(user_vector=pb.UserVector(values=query), n=N)
        )
        assert not {target, "NEW-1", "item-00000"} & set(_ids(got))
        assert len(got.candidates) == N - 2  # 300 trained + 1 added - 3 withdrawn
    cold = await stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(history=pb.UserHistory(item_ids=[]), n=3)
    )
    assert _ids(cold) == ["item-00001", "item-00002", "item-00003"]
    similar = await stub.GetSimilarItems(pb.GetSimilarItemsRequest(item_id="item-00005", n=N))
    assert not {target, "NEW-1", "item-00000"} & set(_ids(similar))
    # A withdrawn seed (a product page of an item out of stock) still has neighbours.
    for seed in (target, "NEW-1"):
        near = await stub.GetSimilarItems(pb.GetSimilarItemsRequest(item_id=seed, n=N))
        assert len(near.candidates) == N - 2
        assert not {target, "NEW-1", "item-00000"} & set(_ids(near))
    missing = await stub.GetItemEmbeddings(pb.GetItemEmbeddingsRequest(item_ids=[target]))
    assert list(missing.missing_item_ids) == [target]

    # Available again: no embedding needed for an item the index holds.
    back = await stub.UpsertItems(
        pb.UpsertItemsRequest(items=[pb.LiveItem(item_id=target), pb.LiveItem(item_id="NEW-1")])
    )
    assert back.restored_count == 2
    got = await stub.RetrieveCandidates(
        pb.RetrieveCandidatesRequest(user_vector=pb.UserVector(values=vector), n=1)
    )
    assert _ids(got) == [target]


async def test_the_live_catalog_survives_a_hot_swap_and_is_projected_by_the_new_tower(
    stub: retrieval_pb2_grpc.RetrievalServiceStub,
) -> None:
    title = _title(3)
    await stub.UpsertItems(
        pb.UpsertItemsRequest(items=[pb.LiveItem(item_id="NEW-3", title_embedding=title)])
    )
    await stub.RemoveItems(pb.RemoveItemsRequest(item_ids=["item-00010"]))
    swapped = await stub.LoadIndexVersion(pb.LoadIndexVersionRequest(index_version="v2"))
    assert swapped.index_version == "v2"
    v2 = _artefact(1)
    assert v2.text_weight is not None
    assert v2.text_bias is not None
    expected = normalise(v2.text_weight @ title + v2.text_bias)
    np.testing.assert_allclose(await _embedding(stub, "NEW-3"), expected, atol=1e-5)
    similar = await stub.GetSimilarItems(pb.GetSimilarItemsRequest(item_id="item-00011", n=N))
    assert "item-00010" not in _ids(similar)
    assert "NEW-3" in _ids(similar)
    # A version without a title tower cannot hold the added items: refused, v2 keeps serving.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.LoadIndexVersion(pb.LoadIndexVersionRequest(index_version="no-tower"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "title tower" in (err.value.details() or "")
    assert (await stub.GetIndexInfo(pb.GetIndexInfoRequest())).index_version == "v2"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([pb.LiveItem(item_id="X", title_embedding=[1.0, 2.0])], "has 2 values; expected 384"),
        ([pb.LiveItem(item_id="X")], r"items\[0\]\.title_embedding is required"),
        ([pb.LiveItem(item_id="", title_embedding=[0.1] * 384)], r"items\[0\]\.item_id is empty"),
        (
            [pb.LiveItem(item_id="X", title_embedding=[0.0] * 384)],
            "zero or not finite",
        ),
        (
            [
                pb.LiveItem(item_id="X", title_embedding=[0.1] * 384),
                pb.LiveItem(item_id="X", title_embedding=[0.1] * 384),
            ],
            r"items\[1\]\.item_id repeats items\[0\]",
        ),
        ([], "must not be empty"),
    ],
)
async def test_bad_upserts_are_invalid_and_change_nothing(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, items: list[pb.LiveItem], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpsertItems(pb.UpsertItemsRequest(items=items))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, err.value.details() or "")
    info = await stub.GetIndexInfo(pb.GetIndexInfoRequest())
    assert (info.item_count, info.live_item_count) == (N, 0)


async def test_the_live_item_limit_is_enforced(root: Path) -> None:
    async with _serve(root, max_live_items=1) as stub:
        await stub.UpsertItems(
            pb.UpsertItemsRequest(items=[pb.LiveItem(item_id="A", title_embedding=_title(0))])
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpsertItems(
                pb.UpsertItemsRequest(items=[pb.LiveItem(item_id="B", title_embedding=_title(1))])
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetSimilarItems(pb.GetSimilarItemsRequest(item_id="nope", n=3))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
