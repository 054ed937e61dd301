"""PrivacyGatewayService on a real grpc.aio server, releasing aggregates from a real
FeatureStoreService (its own server on 127.0.0.1, an SQLite database, real counts)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from ops.keys import main as keys_main
from ops.release import main as release_main
from services.feature_store.app import build_feature_store
from services.feature_store.config import FeatureStoreSettings
from services.feature_store.store import Event, FeatureStore, Item
from services.privacy_gateway.app import (
    build_privacy_gateway,
    reload_keys_forever,
    wait_for_ledger,
)
from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.ledger import Ledger, create_ledger_engine
from services.privacy_gateway.servicer import SERVICE_NAME, _as_count
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import (
    common_pb2,
    feature_store_pb2,
    feature_store_pb2_grpc,
    privacy_gateway_pb2,
    privacy_gateway_pb2_grpc,
)
from shared.keyring import KeyRing, ReloadingKeyRing, load_key_ring
from shared.logging import JsonFormatter
from shared.server import GrpcServer
from tests.service.test_feature_store import SERVING, _wait_status

pb = privacy_gateway_pb2
RAW_USERS = ["17850", "13047", "12583", "14688"]
RAW = "cust-17850"  # cannot occur inside a hex digest by chance
ITEMS = ["85123A", "71053", "84406B", "84029G", "22752"]
POPULARITY = feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY
TREND = feature_store_pb2.AGGREGATE_KIND_CATEGORY_TREND


@dataclass
class Stack:
    gateway: privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub
    feature_store: feature_store_pb2_grpc.FeatureStoreServiceStub
    keys: KeyRing
    fs_server: GrpcServer
    address: str


def _seed(store: FeatureStore, keys: KeyRing) -> None:
    store.load_catalog(
        [Item(i, f"product {i}", ("home", f"c{n % 2}"), 1.0 + n) for n, i in enumerate(ITEMS)]
    )
    t = datetime.now(UTC) - timedelta(days=10)
    bought = {0: [0, 1, 2], 1: [0, 1], 2: [0], 3: [0, 3]}
    store.ingest_events(
        [
            Event(
                f"e{u}-{i}",
                keys.pseudonymize(RAW_USERS[u]),
                ITEMS[i],
                "purchase",
                t + timedelta(hours=u * 10 + i),
            )
            for u, items in bought.items()
            for i in items
        ]
    )


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    keys = KeyRing.generate()
    fs = build_feature_store(
        FeatureStoreSettings(  # type: ignore[call-arg]
            port=0,
            grace_period_s=0.2,
            database_url=f"sqlite:///{tmp_path / 'fs.sqlite'}",
            dev_allow_loopback_privileged=True,
        )
    )
    fs.store.migrate()
    _seed(fs.store, keys)
    async with fs:
        settings = PrivacyGatewaySettings(
            port=0,
            grace_period_s=0.2,
            epsilon_budget=2.0,
            delta_budget=1e-6,
            max_refs_per_request=5,
            default_max_contributions=2,
            feature_store_address=f"127.0.0.1:{fs.port}",
            feature_store_timeout_s=5.0,
            key_ring_json=SecretStr(keys.to_json()),
            database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            dev_allow_loopback_privileged=True,
        )
        async with build_privacy_gateway(settings) as gateway:
            channel = create_channel(f"127.0.0.1:{gateway.port}", max_attempts=1)
            fs_channel = create_channel(f"127.0.0.1:{fs.port}", max_attempts=1)
            # Ready once the ledger tables exist; before that a release would find none.
            await _wait_status(channel, SERVING)
            yield Stack(
                privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel),
                feature_store_pb2_grpc.FeatureStoreServiceStub(fs_channel),
                keys,
                fs.server,
                f"127.0.0.1:{gateway.port}",
            )
            await channel.close()
            await fs_channel.close()


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code()


async def test_pseudonymize_is_stable_and_versioned(stack: Stack) -> None:
    first = await stack.gateway.Pseudonymize(pb.PseudonymizeRequest(user_refs=RAW_USERS[:3]))
    again = await stack.gateway.Pseudonymize(pb.PseudonymizeRequest(user_refs=RAW_USERS[:1]))
    assert first.key_version == "v1"
    assert first.pseudonyms[0] == again.pseudonyms[0] == stack.keys.pseudonymize(RAW_USERS[0])
    assert len(set(first.pseudonyms)) == 3
    # "v1." + a SHA-256 HMAC in hex: nothing of the raw id is carried over. (A digit-only raw
    # id may occur inside a hex digest by chance, so the substring check uses RAW, which has
    # characters no hex digest contains.)
    named = await stack.gateway.Pseudonymize(pb.PseudonymizeRequest(user_refs=[RAW]))
    for pseudonym in [*first.pseudonyms, *named.pseudonyms]:
        assert re.fullmatch(r"v1\.[0-9a-f]{64}", pseudonym), pseudonym
    assert RAW not in named.pseudonyms[0]


@pytest.mark.parametrize(
    ("refs", "message"),
    [
        ([], "user_refs must not be empty"),
        (["a", " "], "user_refs[1] is empty"),
        (["u"] * 6, "at most 5 user_refs"),
        (["x" * 300], "longer than 256"),
    ],
)
async def test_pseudonymize_rejects_bad_input(stack: Stack, refs: list[str], message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.Pseudonymize(pb.PseudonymizeRequest(user_refs=refs))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")


async def test_sanitize_context_applies_the_policy(stack: Stack) -> None:
    out = await stack.gateway.SanitizeContext(
        pb.SanitizeContextRequest(
            context={"email": "a@b.co", "ip": "203.0.113.9", "device": "mobile", "x": "y"}
        )
    )
    assert dict(out.context) == {"ip": "203.0.113.0/24", "device": "mobile"}
    assert list(out.dropped_fields) == ["email", "x"]
    assert list(out.generalized_fields) == ["ip"]
    too_many = {f"f{i}": "v" for i in range(65)}
    code = await _code(stack.gateway.SanitizeContext(pb.SanitizeContextRequest(context=too_many)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_item_popularity_release_is_noised_charged_and_written_back(stack: Stack) -> None:
    release = await stack.gateway.ReleaseAggregates(
        pb.ReleaseAggregatesRequest(
            kind=POPULARITY,
            epsilon=0.5,
            mechanism=pb.NOISE_MECHANISM_LAPLACE,
            purpose="popularity-fallback",
        )
    )
    assert sorted(c.key for c in release.counts) == sorted(ITEMS)
    assert all(c.count == int(c.count) for c in release.counts)
    # Noised: at scale 2 / 0.5 = 4 a draw is 0 with probability (1 - q) / (1 + q) = 0.12
    # (q = exp(-1/4)), so all five exact is a 3e-5 event; the calibration itself is
    # tests/unit/test_privacy_release_statistics.py.
    exact = await stack.feature_store.GetContributionBoundedCounts(
        feature_store_pb2.GetContributionBoundedCountsRequest(
            kind=POPULARITY, max_contributions_per_user=2
        )
    )
    exact_counts = {c.key: c.count for c in exact.counts}
    assert {c.key: c.count for c in release.counts} != exact_counts
    assert release.epsilon_remaining == pytest.approx(1.5)
    assert release.delta_remaining == pytest.approx(1e-6)
    popular = await stack.feature_store.GetPopularItems(
        feature_store_pb2.GetPopularItemsRequest(limit=len(ITEMS))
    )
    assert popular.release_id == release.release_id
    released = {c.key: c.count for c in release.counts}
    assert {i.item_id: i.dp_popularity for i in popular.items} == released

    budget = await stack.gateway.GetPrivacyBudget(pb.GetPrivacyBudgetRequest())
    assert budget.epsilon_total == 2.0
    assert budget.epsilon_spent == pytest.approx(0.5)
    [entry] = budget.entries
    assert entry.release_id == release.release_id
    assert entry.kind == POPULARITY
    assert entry.purpose == "popularity-fallback"
    assert datetime.fromisoformat(entry.released_at).tzinfo is not None


async def test_gaussian_category_trend_release_spends_delta_and_leaves_popularity(
    stack: Stack,
) -> None:
    release = await stack.gateway.ReleaseAggregates(
        pb.ReleaseAggregatesRequest(
            kind=TREND,
            epsilon=1.0,
            delta=5e-7,
            mechanism=pb.NOISE_MECHANISM_GAUSSIAN,
            max_contributions_per_user=1,
            purpose="category-trend",
        )
    )
    assert sorted(c.key for c in release.counts) == ["home"]
    assert release.delta_remaining == pytest.approx(5e-7)
    popular = await stack.feature_store.GetPopularItems(
        feature_store_pb2.GetPopularItemsRequest(limit=1)
    )
    assert popular.release_id == ""


async def test_budget_exhaustion_is_failed_precondition_and_charges_nothing(stack: Stack) -> None:
    request = pb.ReleaseAggregatesRequest(kind=POPULARITY, epsilon=0.8, purpose="trend")
    await stack.gateway.ReleaseAggregates(request)
    await stack.gateway.ReleaseAggregates(request)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.ReleaseAggregates(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "privacy budget exhausted" in (err.value.details() or "")
    gaussian = pb.ReleaseAggregatesRequest(
        kind=POPULARITY,
        epsilon=0.1,
        delta=2e-6,
        mechanism=pb.NOISE_MECHANISM_GAUSSIAN,
        purpose="trend",
    )
    assert await _code(stack.gateway.ReleaseAggregates(gaussian)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    budget = await stack.gateway.GetPrivacyBudget(pb.GetPrivacyBudgetRequest())
    assert budget.epsilon_spent == pytest.approx(1.6)
    assert budget.delta_spent == 0.0
    assert len(budget.entries) == 2


def _window(start: datetime, end: datetime) -> feature_store_pb2.EventWindow:
    window = feature_store_pb2.EventWindow()
    window.start_time.FromDatetime(start)
    window.end_time.FromDatetime(end)
    return window


async def test_releases_over_disjoint_windows_each_get_the_budget(stack: Stack) -> None:
    """The seeded purchases span 33 hours from ten days ago; two halves, each released at
    the whole budget, then an overlapping window and every event are refused."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=11)
    halves = [
        _window(start, start + timedelta(days=1, hours=5)),
        _window(start + timedelta(days=1, hours=5), start + timedelta(days=3)),
    ]
    for window in halves:
        release = await stack.gateway.ReleaseAggregates(
            pb.ReleaseAggregatesRequest(
                kind=POPULARITY, epsilon=2.0, purpose="daily", event_window=window
            )
        )
        assert sorted(c.key for c in release.counts) == sorted(ITEMS)
        assert release.epsilon_remaining == pytest.approx(0.0, abs=1e-9)
    across = _window(start + timedelta(days=1), start + timedelta(days=2))
    for request in (
        pb.ReleaseAggregatesRequest(kind=POPULARITY, epsilon=0.1, purpose="x", event_window=across),
        pb.ReleaseAggregatesRequest(kind=POPULARITY, epsilon=0.1, purpose="x"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.gateway.ReleaseAggregates(request)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    first = await stack.gateway.GetPrivacyBudget(pb.GetPrivacyBudgetRequest(event_window=halves[0]))
    assert first.epsilon_spent == pytest.approx(2.0)
    assert [e.event_window for e in first.entries] == [halves[0]]
    assert (
        await stack.gateway.GetPrivacyBudget(pb.GetPrivacyBudgetRequest())
    ).epsilon_spent == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": 0}, "kind must be"),
        ({"epsilon": 0.0}, "epsilon must be"),
        ({"epsilon": -1.0}, "epsilon must be"),
        ({"epsilon": float("inf")}, "epsilon must be"),
        ({"delta": 1.0, "mechanism": pb.NOISE_MECHANISM_GAUSSIAN}, "delta must be in [0, 1)"),
        ({"mechanism": pb.NOISE_MECHANISM_GAUSSIAN}, "Gaussian mechanism needs delta > 0"),
        ({"delta": 1e-7}, "delta must be 0"),
        ({"mechanism": 7}, "mechanism must be"),
        ({"max_contributions_per_user": -1}, "max_contributions_per_user must be 0"),
        ({"max_contributions_per_user": 5000}, "at most 1000"),
        ({"purpose": "  "}, "purpose must say"),
        ({"purpose": "p" * 201}, "purpose must be at most"),
        ({"event_window": feature_store_pb2.EventWindow()}, "needs both start_time and end_time"),
        (
            {
                "event_window": _window(
                    datetime(2026, 2, 2, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
                )
            },
            "start_time must be before",
        ),
        (
            {
                "event_window": _window(
                    datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(hours=1)
                )
            },
            "must not be in the future",
        ),
    ],
)
async def test_release_rejects_bad_input(
    stack: Stack, fields: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"kind": POPULARITY, "epsilon": 0.5, "purpose": "test"}
    request = pb.ReleaseAggregatesRequest(**{**base, **fields})  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.ReleaseAggregates(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")
    budget = await stack.gateway.GetPrivacyBudget(pb.GetPrivacyBudgetRequest())
    assert budget.epsilon_spent == 0.0


async def test_release_refuses_while_two_key_versions_hold_data(stack: Stack) -> None:
    """After a rotation, before the rekey job: one shopper under two pseudonyms could
    contribute twice the bound, so the release is refused and nothing is charged."""
    rotated = stack.keys.rotated()
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    await stack.feature_store.IngestEvents(
        feature_store_pb2.IngestEventsRequest(
            events=[
                common_pb2.Event(
                    event_id="after-rotation",
                    user_id=rotated.pseudonymize(RAW_USERS[0]),
                    item_id=ITEMS[4],
                    type=common_pb2.EVENT_TYPE_VIEW,
                    timestamp=stamp,
                    quantity=1,
                )
            ]
        )
    )
    request = pb.ReleaseAggregatesRequest(kind=POPULARITY, epsilon=0.5, purpose="test")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.gateway.ReleaseAggregates(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "rekey" in (err.value.details() or "")
    budget = await stack.gateway.GetPrivacyBudget(pb.GetPrivacyBudgetRequest())
    assert budget.epsilon_spent == 0.0


async def test_feature_store_down_is_unavailable_and_charges_nothing(stack: Stack) -> None:
    await stack.fs_server.stop(0)
    request = pb.ReleaseAggregatesRequest(kind=POPULARITY, epsilon=0.5, purpose="test")
    assert await _code(stack.gateway.ReleaseAggregates(request, timeout=10)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    budget = await stack.gateway.GetPrivacyBudget(pb.GetPrivacyBudgetRequest())
    assert budget.epsilon_spent == 0.0


async def test_logs_never_carry_refs_or_pseudonyms(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await stack.gateway.Pseudonymize(pb.PseudonymizeRequest(user_refs=RAW_USERS))
    await stack.gateway.ReleaseAggregates(
        pb.ReleaseAggregatesRequest(kind=POPULARITY, epsilon=0.5, purpose="test")
    )
    await _code(stack.gateway.Pseudonymize(pb.PseudonymizeRequest(user_refs=["u"] * 9)))
    formatter = JsonFormatter("privacy-gateway")
    lines = [formatter.format(r) for r in caplog.records]
    assert any("aggregate released" in line for line in lines)
    secrets = [*RAW_USERS, *response.pseudonyms, *(p.split(".")[1] for p in response.pseudonyms)]
    for line in lines:
        assert not any(s in line for s in secrets), line


async def test_main_serves_and_turns_ready_then_stops_on_sigterm(tmp_path: Path) -> None:
    """The real entry point: key file, ledger database, readiness, SIGTERM."""
    key_file = tmp_path / "keys.json"
    assert keys_main(["generate", "--file", str(key_file)]) == 0
    env = {
        "RECSYS_PRIVACY_GATEWAY_PORT": "0",
        "RECSYS_PRIVACY_GATEWAY_KEY_FILE": str(key_file),
        "RECSYS_PRIVACY_GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 'ledger.sqlite'}",
        "RECSYS_PRIVACY_GATEWAY_TRACES_DIR": str(tmp_path / "traces"),
        "RECSYS_PRIVACY_GATEWAY_GRACE_PERIOD_S": "0.5",
        "RECSYS_PRIVACY_GATEWAY_KEY_RELOAD_INTERVAL_S": "0.2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.privacy_gateway",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    port = 0
    ready = False
    lines: list[dict[str, object]] = []
    async with asyncio.timeout(60):
        while not ready:
            raw = await proc.stdout.readline()
            assert raw, "the gateway exited before it was ready"
            record = json.loads(raw)
            lines.append(record)
            if record.get("msg") == "listening":
                port = int(record["port"])  # type: ignore[call-overload]
            ready = record.get("msg") == "ready"
    async with create_channel(f"127.0.0.1:{port}", max_attempts=1) as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(channel)
        out = await stub.Pseudonymize(pb.PseudonymizeRequest(user_refs=[RAW]), timeout=5)
        assert out.key_version == "v1"
        # A rotated key file (a Kubernetes Secret update) applies without a restart.
        assert keys_main(["rotate", "--file", str(key_file)]) == 0
        async with asyncio.timeout(20):
            while out.key_version != "v2":
                await asyncio.sleep(0.1)
                out = await stub.Pseudonymize(pb.PseudonymizeRequest(user_refs=[RAW]), timeout=5)
        assert load_key_ring(key_file).verify(RAW, out.pseudonyms[0])
        pseudonyms = {out.pseudonyms[0], load_key_ring(key_file).pseudonym_under(RAW, "v1")}
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    # The exported spans and every log line of the process: no raw id, no pseudonym.
    log_text = "\n".join(json.dumps(r) for r in lines) + (await proc.stdout.read()).decode()
    span_text = (tmp_path / "traces" / "privacy-gateway.jsonl").read_text()
    assert "Pseudonymize" in span_text
    assert "key ring reloaded" in log_text
    for text in (log_text, span_text):
        assert RAW not in text
        for p in pseudonyms:
            assert p.split(".")[1] not in text
    assert (tmp_path / "db" / "ledger.sqlite").exists()


async def test_readiness_waits_for_an_unreachable_ledger_database() -> None:
    unreachable = Ledger(
        create_ledger_engine("postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"),
        epsilon_total=1.0,
        delta_total=0.0,
    )
    with ThreadPoolExecutor(1) as executor, pytest.raises(TimeoutError):
        await asyncio.wait_for(wait_for_ledger(unreachable, executor), 1.5)
    unreachable.close()


async def test_key_reload_loop_keeps_the_ring_when_the_file_breaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ring.json"
    assert keys_main(["generate", "--file", str(path)]) == 0
    keys = ReloadingKeyRing(path)
    path.write_text("{broken")
    with ThreadPoolExecutor(1) as executor:
        task = asyncio.create_task(reload_keys_forever(keys, 0.01, executor))
        await asyncio.sleep(0.2)
        task.cancel()
    assert keys().active_version == "v1"
    assert any("key ring reload failed" in r.getMessage() for r in caplog.records)


async def test_release_cli_reports_the_release_and_exits_2_when_refused(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--address", stack.address, "--epsilon", "1.5", "--purpose", "cron refresh"]
    assert await asyncio.to_thread(release_main, args) == 0
    out = capsys.readouterr().out
    # Without window flags: the previous full UTC day.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = f"[{(today - timedelta(days=1)).isoformat()}, {today.isoformat()})"
    assert f"{len(ITEMS)} keys over {yesterday}; epsilon left in the window 0.5" in out
    popular = await stack.feature_store.GetPopularItems(
        feature_store_pb2.GetPopularItemsRequest(limit=1)
    )
    assert popular.release_id in out
    assert await asyncio.to_thread(release_main, args) == 2
    assert "FAILED_PRECONDITION: privacy budget exhausted" in capsys.readouterr().err
    bad = [*args[:2], "--epsilon", "1", "--mechanism", "gaussian", "--purpose", "x"]
    assert await asyncio.to_thread(release_main, bad) == 2
    assert "INVALID_ARGUMENT" in capsys.readouterr().err
    # The seeded events lie ten days back, a window no release has covered yet.
    seeded = datetime.now(UTC) - timedelta(days=10)
    window = [
        "--window-start",
        seeded.date().isoformat(),
        "--window-end",
        (seeded + timedelta(days=3)).date().isoformat(),
    ]
    assert await asyncio.to_thread(release_main, [*args, *window]) == 0
    assert "epsilon left in the window 0.5" in capsys.readouterr().out
    future = [
        "--window-start",
        today.isoformat(),
        "--window-end",
        (today + timedelta(days=2)).isoformat(),
    ]
    assert await asyncio.to_thread(release_main, [*args, *future]) == 2
    assert (
        "INVALID_ARGUMENT: event_window.end_time must not be in the future"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as exit_:
        release_main([*args, "--window-start", "2026-11-01"])
    assert exit_.value.code == 2
    assert "--window-start and --window-end go together" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        release_main([*args, "--window-start", "yesterday", "--window-end", "2026-11-01"])
    assert "not an ISO 8601" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [1.5, -1.0, float("nan"), float("inf")])
def test_counts_that_break_the_feature_store_contract_are_refused(bad: float) -> None:
    assert _as_count(3.0) == 3
    with pytest.raises(RuntimeError, match="not a whole number"):
        _as_count(bad)
