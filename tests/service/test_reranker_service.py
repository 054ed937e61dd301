"""RerankerService over a real grpc.aio server on 127.0.0.1:0, including every error status."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import ValidationError

from services.reranker.app import RerankerApp, build_reranker
from services.reranker.config import RerankerSettings
from services.reranker.servicer import SERVICE_NAME
from shared.app import serve
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import common_pb2, reranker_pb2, reranker_pb2_grpc

Stub = reranker_pb2_grpc.RerankerServiceStub


def _candidates(n: int = 12, d: int = 8, seed: int = 0) -> list[reranker_pb2.RerankCandidate]:
    rng = np.random.default_rng(seed)
    return [
        reranker_pb2.RerankCandidate(
            item_id=f"item-{i}",
            relevance=float(rng.normal()),
            embedding=rng.normal(size=d).tolist(),
            category=f"cat-{i % 3}",
        )
        for i in range(n)
    ]


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    settings = RerankerSettings(
        port=0,
        grace_period_s=0.2,
        max_candidates=50,
        max_embedding_dim=16,
        max_category_depth=4,
        executor_workers=2,
    )
    async with (
        build_reranker(settings) as app,
        create_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        yield reranker_pb2_grpc.RerankerServiceStub(channel)


async def test_mmr_is_the_default_and_returns_k_unique_items(stub: Stub) -> None:
    cands = _candidates()
    resp = await stub.Rerank(reranker_pb2.RerankRequest(candidates=cands, k=5, tradeoff=0.7))
    assert resp.method == common_pb2.RERANK_METHOD_MMR
    ids = [item.item_id for item in resp.items]
    assert len(ids) == len(set(ids)) == 5
    given = {c.item_id: c.relevance for c in cands}
    assert all(item.relevance == given[item.item_id] for item in resp.items)
    assert all(math.isfinite(item.selection_score) for item in resp.items)


@pytest.mark.parametrize(
    "method",
    [common_pb2.RERANK_METHOD_NONE, common_pb2.RERANK_METHOD_MMR, common_pb2.RERANK_METHOD_DPP],
)
async def test_tradeoff_zero_is_the_relevance_order(stub: Stub, method: int) -> None:
    cands = _candidates(seed=3)
    resp = await stub.Rerank(
        reranker_pb2.RerankRequest(candidates=cands, k=20, method=method, tradeoff=0.0)
    )
    assert resp.method == method
    by_relevance = sorted(cands, key=lambda c: -c.relevance)
    assert [i.item_id for i in resp.items] == [c.item_id for c in by_relevance]


async def test_category_cap_and_window_over_the_wire(stub: Stub) -> None:
    resp = await stub.Rerank(
        reranker_pb2.RerankRequest(
            candidates=_candidates(),
            k=6,
            method=common_pb2.RERANK_METHOD_MMR,
            tradeoff=0.5,
            max_per_category=2,
            window_size=3,
        )
    )
    cats = [item.item_id for item in resp.items]
    assert len(cats) == 6
    per_cat = [int(i.split("-")[1]) % 3 for i in cats]
    assert all(per_cat.count(c) == 2 for c in range(3))


async def test_candidates_without_embeddings_are_served(stub: Stub) -> None:
    cands = [
        reranker_pb2.RerankCandidate(item_id=f"x{i}", relevance=float(10 - i), category=c)
        for i, c in enumerate(["a", "a", "b", ""])
    ]
    resp = await stub.Rerank(reranker_pb2.RerankRequest(candidates=cands, k=2, tradeoff=0.9))
    assert [i.item_id for i in resp.items] == ["x0", "x2"]


# All "toys"; three crayons and two paint sets are the most relevant (the demo's page).
_TOYS = [
    ("toys", "crafts", "crayons"),
    ("toys", "crafts", "crayons"),
    ("toys", "crafts", "paint set"),
    ("toys", "crafts", "crayons"),
    ("toys", "crafts", "paint set"),
    ("toys", "outdoor", "kite"),
    ("toys", "games", "board game"),
    ("toys", "games", "jigsaw puzzle"),
]


def _toys(*, with_label: bool) -> list[reranker_pb2.RerankCandidate]:
    return [
        reranker_pb2.RerankCandidate(
            item_id=f"t{i}",
            relevance=1.0 - i / 10,
            embedding=[1.0, 0.0],  # the embedding cannot tell the toys apart
            category=path[0] if with_label else "",
            category_path=list(path),
        )
        for i, path in enumerate(_TOYS)
    ]


@pytest.mark.parametrize("with_label", [True, False])
@pytest.mark.parametrize("method", [common_pb2.RERANK_METHOD_DPP, common_pb2.RERANK_METHOD_MMR])
async def test_category_paths_spread_the_leaves(stub: Stub, method: int, with_label: bool) -> None:
    request = reranker_pb2.RerankRequest(
        candidates=_toys(with_label=with_label), k=5, method=method, tradeoff=0.9
    )
    resp = await stub.Rerank(request)
    leaves = [_TOYS[int(i.item_id[1:])][-1] for i in resp.items]
    assert len(set(leaves)) == 5, leaves
    assert resp.items[0].item_id == "t0"
    # The label alone (an older caller) knows only "toys": the relevance order comes back.
    for cand in request.candidates:
        cand.ClearField("category_path")
        cand.category = "toys"
    flat = await stub.Rerank(request)
    assert [i.item_id for i in flat.items] == [f"t{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (0, ["t0"]),  # the service default: the top level, where every item is a toy
        (1, ["t0"]),
        (2, ["t0", "t5", "t6"]),  # one of crafts, outdoor, games
        (3, ["t0", "t2", "t5", "t6", "t7"]),  # one per leaf
    ],
)
async def test_category_cap_at_a_level_over_the_wire(
    stub: Stub, level: int, expected: list[str]
) -> None:
    resp = await stub.Rerank(
        reranker_pb2.RerankRequest(
            candidates=_toys(with_label=True),
            k=8,
            method=common_pb2.RERANK_METHOD_NONE,
            max_per_category=1,
            category_cap_level=level,
        )
    )
    assert [i.item_id for i in resp.items] == expected


async def test_configured_cap_level_and_level_weights_apply() -> None:
    request = reranker_pb2.RerankRequest(
        candidates=_toys(with_label=True),
        k=8,
        method=common_pb2.RERANK_METHOD_NONE,
        max_per_category=1,
    )
    resp = await _serve_once(RerankerSettings(port=0, category_cap_level=3), request)
    assert [i.item_id for i in resp.items] == ["t0", "t2", "t5", "t6", "t7"]
    # With the top level alone weighted, the paths say no more than the label "toys".
    request = reranker_pb2.RerankRequest(
        candidates=_toys(with_label=True), k=5, method=common_pb2.RERANK_METHOD_DPP, tradeoff=0.9
    )
    resp = await _serve_once(RerankerSettings(port=0, category_level_weights=(1.0,)), request)
    assert [i.item_id for i in resp.items] == [f"t{i}" for i in range(5)]


def _bad_requests() -> list[tuple[str, reranker_pb2.RerankRequest, str]]:
    good = _candidates(4, 3)

    def with_candidate(i: int, **fields: object) -> list[reranker_pb2.RerankCandidate]:
        cands = [reranker_pb2.RerankCandidate() for _ in good]
        for c, g in zip(cands, good, strict=True):
            c.CopyFrom(g)
        cands[i].ClearField("embedding")
        for name, value in fields.items():
            if name in ("embedding", "category_path"):
                getattr(cands[i], name).extend(value)
            else:
                setattr(cands[i], name, value)
        if "embedding" not in fields:
            cands[i].embedding.extend(good[i].embedding)
        return cands

    req = reranker_pb2.RerankRequest
    return [
        ("empty", req(k=3), "candidates must not be empty"),
        ("too many", req(candidates=_candidates(51, 2), k=3), "at most 50 candidates"),
        ("k zero", req(candidates=good, k=0), "k must be >= 1"),
        ("k negative", req(candidates=good, k=-4), "k must be >= 1"),
        ("tradeoff high", req(candidates=good, k=2, tradeoff=1.5), "tradeoff"),
        ("tradeoff nan", req(candidates=good, k=2, tradeoff=float("nan")), "tradeoff"),
        ("cap negative", req(candidates=good, k=2, max_per_category=-1), "max_per_category"),
        ("window one", req(candidates=good, k=2, window_size=1), "window_size"),
        ("window negative", req(candidates=good, k=2, window_size=-3), "window_size"),
        ("method unknown", req(candidates=good, k=2, method=9), "not a known RerankMethod"),  # type: ignore[arg-type]
        ("empty id", req(candidates=with_candidate(2, item_id=""), k=2), "candidates[2].item_id"),
        (
            "duplicate id",
            req(candidates=with_candidate(3, item_id=good[0].item_id), k=2),
            "candidates[3].item_id repeats",
        ),
        (
            "relevance nan",
            req(candidates=with_candidate(1, relevance=float("inf")), k=2),
            "candidates[1].relevance must be a finite",
        ),
        (
            "dimension mismatch",
            req(candidates=with_candidate(2, embedding=[1.0, 2.0]), k=2),
            "candidates[2].embedding has dimension 2",
        ),
        (
            "embedding nan",
            req(candidates=with_candidate(3, embedding=[1.0, float("nan"), 0.0]), k=2),
            "candidates[3].embedding must contain finite",
        ),
        (
            "dimension too large",
            req(candidates=_candidates(3, 17), k=2),
            "embedding dimension 17 exceeds the limit 16",
        ),
        (
            "cap level negative",
            req(candidates=good, k=2, category_cap_level=-1),
            "category_cap_level",
        ),
        (
            "cap level too deep",
            req(candidates=good, k=2, category_cap_level=5),
            "category_cap_level must be 0 (service default) or a level from 1 to 4",
        ),
        (
            "path too deep",
            req(candidates=with_candidate(1, category_path=["a"] * 5), k=2),
            "candidates[1].category_path has 5 levels, at most 4",
        ),
        (
            "path with an empty level",
            req(candidates=with_candidate(2, category_path=["cat-2", ""]), k=2),
            "candidates[2].category_path must not contain empty levels",
        ),
        (
            "label disagrees with the path",
            req(candidates=with_candidate(0, category_path=["other", "x"]), k=2),
            "candidates[0].category must be empty or equal category_path[0]",
        ),
    ]


@pytest.mark.parametrize(
    ("name", "request_", "message"), _bad_requests(), ids=lambda x: x if isinstance(x, str) else ""
)
async def test_invalid_requests_are_invalid_argument(
    stub: Stub, name: str, request_: reranker_pb2.RerankRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Rerank(request_, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
    assert message in (err.value.details() or "")


async def _serve_once(
    settings: RerankerSettings, request: reranker_pb2.RerankRequest
) -> reranker_pb2.RerankResponse:
    async with (
        build_reranker(settings) as app,
        create_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        return await reranker_pb2_grpc.RerankerServiceStub(channel).Rerank(request, timeout=5)


async def test_configured_default_method_applies() -> None:
    request = reranker_pb2.RerankRequest(candidates=_candidates(), k=3, tradeoff=1.0)
    resp = await _serve_once(RerankerSettings(port=0, default_method="none"), request)
    assert resp.method == common_pb2.RERANK_METHOD_NONE


@pytest.mark.parametrize(("default_window", "third_score"), [(0, -690.0), (2, 0.0)])
async def test_configured_default_window_applies(default_window: int, third_score: float) -> None:
    # x1 duplicates x0. Over the whole list its residual is gone, so it only comes back as a
    # relevance fill (log of a floored residual); with a window of 2, x0 has left the window
    # by then and x1 is a full-volume DPP pick again (log 1 = 0 at trade-off 1).
    cands = [
        reranker_pb2.RerankCandidate(item_id="x0", relevance=1.0, embedding=[1.0, 0.0]),
        reranker_pb2.RerankCandidate(item_id="x1", relevance=0.9, embedding=[1.0, 0.0]),
        reranker_pb2.RerankCandidate(item_id="x2", relevance=0.0, embedding=[0.0, 1.0]),
    ]
    request = reranker_pb2.RerankRequest(
        candidates=cands, k=3, method=common_pb2.RERANK_METHOD_DPP, tradeoff=1.0
    )
    resp = await _serve_once(RerankerSettings(port=0, default_window=default_window), request)
    assert [i.item_id for i in resp.items] == ["x0", "x2", "x1"]
    assert resp.items[2].selection_score == pytest.approx(third_score, abs=1.0)


async def test_main_wiring_is_ready_at_start_and_stops_on_signal() -> None:
    settings = RerankerSettings(port=0, grace_period_s=0.1)
    stop = asyncio.Event()
    apps: list[RerankerApp] = []

    def build(settings: RerankerSettings) -> RerankerApp:
        apps.append(build_reranker(settings))
        return apps[-1]

    task = asyncio.create_task(serve(build, settings, stop_event=stop))
    for _ in range(100):
        if apps and apps[0].port:
            break
        await asyncio.sleep(0.02)
    async with create_channel(f"127.0.0.1:{apps[0].port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(50):
            ready = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
            if ready.status == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.02)
        assert ready.status == health_pb2.HealthCheckResponse.SERVING
        resp = await reranker_pb2_grpc.RerankerServiceStub(channel).Rerank(
            reranker_pb2.RerankRequest(candidates=_candidates(), k=4, tradeoff=0.5), timeout=5
        )
        assert len(resp.items) == 4
    stop.set()
    await asyncio.wait_for(task, 5)
    # The shutdown hook closed the executor the selections ran in.
    with pytest.raises(RuntimeError, match="shutdown"):
        apps[0].executor.submit(int)


async def test_spans_carry_counts_never_ids_or_scores() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = RerankerSettings(port=0, grace_period_s=0.2)
    cands = _candidates(seed=9)
    async with (
        build_reranker(settings, tracer=provider.get_tracer("test")) as app,
        create_channel(f"127.0.0.1:{app.port}") as channel,
    ):
        await reranker_pb2_grpc.RerankerServiceStub(channel).Rerank(
            reranker_pb2.RerankRequest(candidates=cands, k=4, tradeoff=0.5), timeout=5
        )
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs["reranker.candidates"] == len(cands)
    assert attrs["reranker.selected"] == 4
    text = repr(attrs)
    assert not any(c.item_id in text or repr(c.relevance) in text for c in cands)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_RERANKER_DEFAULT_METHOD", "mmr")
    monkeypatch.setenv("RECSYS_RERANKER_MAX_CANDIDATES", "77")
    settings = RerankerSettings()  # type: ignore[call-arg]
    assert settings.port == 50055
    assert settings.default_method == "mmr"
    assert settings.max_candidates == 77
    with pytest.raises(ValidationError, match="default_window"):
        RerankerSettings(default_window=1)
    with pytest.raises(ValidationError):
        RerankerSettings(default_method="random")  # type: ignore[arg-type]
    monkeypatch.setenv("RECSYS_RERANKER_CATEGORY_LEVEL_WEIGHTS", "[0.5, 0.5]")
    monkeypatch.setenv("RECSYS_RERANKER_CATEGORY_CAP_LEVEL", "2")
    settings = RerankerSettings()  # type: ignore[call-arg]
    assert settings.category_level_weights == (0.5, 0.5)
    assert settings.category_cap_level == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"category_level_weights": ()}, "category_level_weights"),
        ({"category_level_weights": (0.0, 0.0)}, "category_level_weights"),
        ({"category_level_weights": (-1.0, 2.0)}, "category_level_weights"),
        ({"category_level_weights": (float("inf"),)}, "category_level_weights"),
        ({"category_cap_level": 0}, "category_cap_level"),
        ({"category_cap_level": 5, "max_category_depth": 4}, "max_category_depth"),
    ],
)
def test_unusable_category_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RerankerSettings(**fields)  # type: ignore[arg-type]
