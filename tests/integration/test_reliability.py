"""Reliability of the local stack (issue 9): a bounded load run while the optional services
are SIGKILLed and restarted one by one, and hostile inputs.

Figures (calls, degraded answers by stage, acknowledged events) are printed; run with -s to
see them: python -m pytest -s tests/integration/test_reliability.py
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from devstack.stack import Layout, Stack
from services.orchestrator.config import OrchestratorSettings
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.integration.conftest import N_ITEMS, N_USERS
from tests.integration.local_stack import running_stack

pytestmark = pytest.mark.slow

OPTIONAL = ("ranker", "reranker", "retrieval", "feature_store")
STAGE_NAMES = {v: k for k, v in common_pb2.Stage.items()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Stack]]:
    with running_stack(tmp_path_factory.mktemp("reliability")) as running:
        yield running


@dataclass
class Tally:
    recommend_ok: int = 0
    recommend_failed: Counter[str] = field(default_factory=Counter)
    short_answers: int = 0
    degraded: Counter[str] = field(default_factory=Counter)
    acked_events: list[str] = field(default_factory=list)
    rejected_batches: Counter[str] = field(default_factory=Counter)


def _request(i: int) -> orchestrator_pb2.RecommendRequest:
    return orchestrator_pb2.RecommendRequest(user_ref=f"user-{i % N_USERS:05d}", k=5)


async def _recommend_loop(
    stub: orchestrator_pb2_grpc.RecommendationServiceStub,
    tally: Tally,
    stop: asyncio.Event,
    worker: int,
) -> None:
    i = worker
    while not stop.is_set():
        i += 2
        try:
            resp = await stub.Recommend(_request(i), timeout=20)
        except grpc.aio.AioRpcError as exc:
            tally.recommend_failed[exc.code().name] += 1
            continue
        tally.recommend_ok += 1
        if len(resp.items) != 5:
            tally.short_answers += 1
        for d in resp.degraded_stages:
            tally.degraded[STAGE_NAMES[d.stage]] += 1


async def _event_loop(
    stub: orchestrator_pb2_grpc.RecommendationServiceStub, tally: Tally, stop: asyncio.Event
) -> None:
    n = 0
    while not stop.is_set():
        batch = [
            orchestrator_pb2.ShopperEvent(
                event_id=f"chaos-{uuid.uuid4().hex}",
                user_ref=f"user-{(n + j) % N_USERS:05d}",
                item_id=f"SKU{(n * 7 + j) % N_ITEMS:06d}",
                type=common_pb2.EVENT_TYPE_VIEW,
            )
            for j in range(5)
        ]
        n += 5
        try:
            await stub.LogEvents(orchestrator_pb2.LogEventsRequest(events=batch), timeout=10)
        except grpc.aio.AioRpcError as exc:
            # Not acknowledged: the client must retry; nothing is promised about these.
            tally.rejected_batches[exc.code().name] += 1
        else:
            tally.acked_events += [e.event_id for e in batch]
        await asyncio.sleep(0.1)


def _chaos(stack: Stack, pause_s: float, outage_s: float) -> list[str]:
    done = []
    for name in OPTIONAL:
        time.sleep(pause_s)
        stack.processes[name].kill()  # SIGKILL: no drain, no goodbye
        time.sleep(outage_s)
        stack.processes[name].stop(0)  # reap and close the log of the dead process
        stack.start([name])
        asyncio.run(stack.wait_ready([name]))
        done.append(name)
    return done


def test_kill_and_restart_under_load_loses_nothing(stack: tuple[Layout, Stack]) -> None:
    layout, running = stack
    tally = Tally()

    async def scenario() -> list[str]:
        async with grpc.aio.insecure_channel(layout.addr("orchestrator")) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            stop = asyncio.Event()
            load = [
                asyncio.create_task(_recommend_loop(stub, tally, stop, 0)),
                asyncio.create_task(_recommend_loop(stub, tally, stop, 1)),
                asyncio.create_task(_event_loop(stub, tally, stop)),
            ]
            try:
                killed = await asyncio.wait_for(
                    asyncio.to_thread(_chaos, running, 2.0, 3.0), timeout=240
                )
                # All back: answers must be whole again once each circuit breaker's open
                # interval has passed and its half-open probe found the stage healthy.
                before = tally.recommend_ok
                settle_s = 2.0 + OrchestratorSettings.model_fields["breaker_open_s"].default
                deadline = time.monotonic() + settle_s + 10.0
                while True:
                    full = await stub.Recommend(_request(0), timeout=20)
                    if not full.degraded_stages or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)
            finally:
                stop.set()
                await asyncio.gather(*load)
            assert not full.degraded_stages, full.degraded_stages
            assert tally.recommend_ok > before
            return killed

    killed = asyncio.run(scenario())
    print(
        f"\nreliability: killed and restarted {killed}; Recommend ok {tally.recommend_ok}, "
        f"failed {dict(tally.recommend_failed)}, short answers {tally.short_answers}, "
        f"degraded by stage {dict(tally.degraded)}; events acknowledged "
        f"{len(tally.acked_events)}, batches refused {dict(tally.rejected_batches)}"
    )
    assert killed == list(OPTIONAL)
    assert tally.recommend_failed == Counter(), "a Recommend call failed instead of degrading"
    assert tally.short_answers == 0
    assert tally.recommend_ok >= 20
    for stage in ("STAGE_RANKER", "STAGE_FEATURE_STORE"):
        assert tally.degraded[stage] > 0, f"no answer was flagged {stage} while it was down"
    # Every acknowledged event is in the database after the store was SIGKILLed.
    assert tally.acked_events
    with sqlite3.connect(layout.feature_store_db) as db:
        db.execute("create temp table acked(event_id text primary key)")
        db.executemany("insert into acked values (?)", [(e,) for e in tally.acked_events])
        lost = db.execute(
            "select count(*) from acked where event_id not in (select event_id from events)"
        ).fetchone()[0]
    assert lost == 0, f"{lost} acknowledged events are missing"


HOSTILE_RECOMMEND = [
    ("negative k", {"user_ref": "user-00001", "k": -1}),
    ("zero k", {"user_ref": "user-00001", "k": 0}),
    ("huge k", {"user_ref": "user-00001", "k": 1_000_000}),
    ("empty user", {"user_ref": "", "k": 5}),
    ("blank user", {"user_ref": " \t\n", "k": 5}),
    ("oversize user ref", {"user_ref": "x" * 100_000, "k": 5}),
    (
        "too many exclusions",
        {"user_ref": "u", "k": 5, "excluded_item_ids": [f"SKU{i:06d}" for i in range(5000)]},
    ),
    (
        "too many context fields",
        {"user_ref": "u", "k": 5, "context": {f"f{i}": "v" for i in range(1000)}},
    ),
    (
        "trade-off above 1",
        {"user_ref": "u", "k": 5, "diversity": orchestrator_pb2.DiversitySettings(tradeoff=2.0)},
    ),
    (
        "NaN trade-off",
        {
            "user_ref": "u",
            "k": 5,
            "diversity": orchestrator_pb2.DiversitySettings(tradeoff=float("nan")),
        },
    ),
    (
        "unknown method",
        {"user_ref": "u", "k": 5, "diversity": orchestrator_pb2.DiversitySettings(method=77)},
    ),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("label", "fields"), HOSTILE_RECOMMEND, ids=[h[0] for h in HOSTILE_RECOMMEND]
)
def test_hostile_recommend_gets_invalid_argument(
    stack: tuple[Layout, Stack], label: str, fields: dict[str, object]
) -> None:
    layout, _ = stack

    async def call() -> grpc.aio.AioRpcError:
        async with grpc.aio.insecure_channel(layout.addr("orchestrator")) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Recommend(orchestrator_pb2.RecommendRequest(**fields), timeout=20)
            return err.value

    err = asyncio.run(call())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (label, err.code())
    assert err.details()
    assert "x" * 50 not in (err.details() or ""), "the error echoes the payload"


def test_junk_and_empty_histories_get_answers_not_errors(stack: tuple[Layout, Stack]) -> None:
    layout, _ = stack

    async def call() -> list[orchestrator_pb2.RecommendResponse]:
        async with grpc.aio.insecure_channel(layout.addr("orchestrator")) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            refs = [
                "\u202e\u0000💥 ünïcödé \udcff".encode("utf-8", "replace").decode(),
                f"brand-new-shopper-{uuid.uuid4().hex}",
            ]
            return [
                await stub.Recommend(
                    orchestrator_pb2.RecommendRequest(
                        user_ref=ref, k=5, context={"page": "\u0000\u202e<script>", "x": "💥"}
                    ),
                    timeout=20,
                )
                for ref in refs
            ]

    for resp in asyncio.run(call()):
        # A shopper with no history gets a cold-start list, a full page of real items.
        assert len(resp.items) == 5
        assert all(item.item_id.startswith("SKU") for item in resp.items)


def test_wrong_types_and_oversize_messages_get_a_clear_status(
    stack: tuple[Layout, Stack],
) -> None:
    layout, _ = stack

    async def call() -> tuple[grpc.StatusCode, grpc.StatusCode]:
        async with grpc.aio.insecure_channel(layout.addr("orchestrator")) as channel:
            raw = channel.unary_unary(
                "/acme.recsys.v1.RecommendationService/Recommend",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            # Field 2 (k) sent with wire type 2 (bytes) instead of a varint: not a
            # RecommendRequest at all.
            with pytest.raises(grpc.aio.AioRpcError) as garbage:
                await raw(b"\x12\x05hello\xff\xff\xff", timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as huge:
                await raw(b"\x0a" + b"\xff\xff\xff\x0f" + b"a" * (32 * 1024 * 1024), timeout=30)
            return garbage.value.code(), huge.value.code()

    garbage, huge = asyncio.run(call())
    assert garbage == grpc.StatusCode.INVALID_ARGUMENT
    assert huge == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_hostile_events_are_rejected_whole(stack: tuple[Layout, Stack]) -> None:
    layout, _ = stack
    good = {
        "event_id": "e-ok",
        "user_ref": "user-00001",
        "item_id": "SKU000001",
        "type": common_pb2.EVENT_TYPE_VIEW,
    }
    cases = [
        {**good, "event_id": ""},
        {**good, "item_id": ""},
        {**good, "type": common_pb2.EVENT_TYPE_UNSPECIFIED},
        {**good, "type": 42},
        {**good, "quantity": -3},
        {**good, "item_id": "NOT-IN-CATALOG-💥"},
    ]

    async def call() -> list[grpc.aio.AioRpcError]:
        errors = []
        async with grpc.aio.insecure_channel(layout.addr("orchestrator")) as channel:
            stub = orchestrator_pb2_grpc.RecommendationServiceStub(channel)
            for bad in cases:
                batch = [
                    orchestrator_pb2.ShopperEvent(**{**good, "event_id": f"ok-{uuid.uuid4()}"}),
                    orchestrator_pb2.ShopperEvent(**bad),
                ]  # type: ignore[arg-type]
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.LogEvents(
                        orchestrator_pb2.LogEventsRequest(events=batch), timeout=10
                    )
                errors.append(err.value)
        return errors

    for err in asyncio.run(call()):
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "events[1]" in (err.details() or ""), err.details()
    # The good first event of each rejected batch was not stored.
    with sqlite3.connect(layout.feature_store_db) as db:
        stored = db.execute("select count(*) from events where event_id like 'ok-%'").fetchone()[0]
    assert stored == 0


def test_feature_store_db_is_the_stacks(stack: tuple[Layout, Stack]) -> None:
    layout, _ = stack
    assert Path(layout.feature_store_db).exists()
