"""FeatureStoreService through a real grpc.aio server on 127.0.0.1:0 and a real database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.feature_store.app import FeatureStoreApp, build_feature_store
from services.feature_store.config import FeatureStoreSettings
from services.feature_store.servicer import SERVICE_NAME
from services.feature_store.store import FeatureStore
from shared.channels import TlsClientConfig, create_channel
from shared.gen.acme.recsys.v1 import common_pb2, feature_store_pb2, feature_store_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _settings(url: str, **overrides: object) -> FeatureStoreSettings:
    values: dict[str, object] = {
        "port": 0,
        "database_url": url,
        "grace_period_s": 0.2,
        "executor_workers": 2,
        "readiness_interval_s": 0.1,
        "readiness_timeout_s": 2.0,
        "max_item_batch": 500,
        "max_events_per_call": 50,
        # The privileged methods are tested here over plain loopback connections; the
        # certificate checks are tests/service/test_feature_store_auth.py.
        "dev_allow_loopback_privileged": True,
    }
    values.update(overrides)
    return FeatureStoreSettings(**values)  # type: ignore[arg-type]


async def _status(channel: grpc.aio.Channel, service: str = "") -> int:
    resp = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=2
    )
    return int(resp.status)


async def _wait_status(channel: grpc.aio.Channel, want: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await _status(channel) == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"readiness never became {want}")


def _ts(minute: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(2026, 2, 1, 10, minute, tzinfo=UTC))
    return stamp


def _catalog(n: int = 6) -> list[common_pb2.ItemFeatures]:
    return [
        common_pb2.ItemFeatures(
            item_id=f"SKU{i}",
            title=f"product {i}",
            category_path=["home" if i % 2 else "toys", "sub"],
            price=2.5 * (i + 1),
            embedding_version="emb-3",
        )
        for i in range(n)
    ]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[FeatureStoreApp]:
    app = build_feature_store(_settings(f"sqlite:///{tmp_path / 'fs.sqlite'}"))
    await app.start()
    yield app
    await app.stop(0)


@contextlib.asynccontextmanager
async def serving_stub(
    port: int, tls: TlsClientConfig | None = None
) -> AsyncIterator[feature_store_pb2_grpc.FeatureStoreServiceStub]:
    """A stub on a channel to the feature store on ``port``, once it reports SERVING."""
    async with create_channel(f"127.0.0.1:{port}", tls=tls) as channel:
        await _wait_status(channel, SERVING)
        yield feature_store_pb2_grpc.FeatureStoreServiceStub(channel)


@pytest.fixture
async def stub(
    running: FeatureStoreApp,
) -> AsyncIterator[feature_store_pb2_grpc.FeatureStoreServiceStub]:
    async with serving_stub(running.port) as stub:
        loaded = await stub.LoadCatalog(feature_store_pb2.LoadCatalogRequest(items=_catalog()))
        assert (loaded.inserted_count, loaded.updated_count) == (6, 0)
        yield stub


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code(), err.value.details() or ""


async def test_readiness_turns_serving_once_migrated(running: FeatureStoreApp) -> None:
    async with create_channel(f"127.0.0.1:{running.port}") as channel:
        assert await _status(channel, "liveness") == SERVING
        await _wait_status(channel, SERVING)
        assert await _status(channel, SERVICE_NAME) == SERVING


async def test_get_item_features_keeps_order_and_reports_missing(
    stub: feature_store_pb2_grpc.FeatureStoreServiceStub,
) -> None:
    resp = await stub.GetItemFeatures(
        feature_store_pb2.GetItemFeaturesRequest(item_ids=["SKU3", "nope", "SKU0", "SKU3"]),
        timeout=5,
    )
    assert [it.item_id for it in resp.items] == ["SKU3", "SKU0", "SKU3"]
    assert list(resp.missing_item_ids) == ["nope"]
    assert resp.items[0].title == "product 3"
    assert list(resp.items[0].category_path) == ["home", "sub"]
    assert resp.items[0].price == pytest.approx(10.0)
    assert resp.items[0].embedding_version == "emb-3"
    code, details = await _code(
        stub.GetItemFeatures(
            feature_store_pb2.GetItemFeaturesRequest(item_ids=[f"x{i}" for i in range(501)])
        )
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "item_ids has 501 entries; at most 500" in details
    code, details = await _code(
        stub.GetItemFeatures(feature_store_pb2.GetItemFeaturesRequest(item_ids=["SKU1", ""]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "item_ids[1] is empty"


async def test_ingest_then_read_user_features(
    stub: feature_store_pb2_grpc.FeatureStoreServiceStub,
) -> None:
    events = [
        common_pb2.Event(
            event_id="ev-1",
            user_id="v1.abc",
            item_id="SKU1",
            type=common_pb2.EVENT_TYPE_VIEW,
            timestamp=_ts(1),
            quantity=1,
        ),
        common_pb2.Event(
            event_id="ev-2",
            user_id="v1.abc",
            item_id="SKU2",
            type=common_pb2.EVENT_TYPE_PURCHASE,
            timestamp=_ts(2),
            quantity=2,
        ),
    ]
    first = await stub.IngestEvents(feature_store_pb2.IngestEventsRequest(events=events))
    assert (first.accepted_count, first.duplicate_count) == (2, 0)
    again = await stub.IngestEvents(feature_store_pb2.IngestEventsRequest(events=events))
    assert (again.accepted_count, again.duplicate_count) == (0, 2)
    resp = await stub.GetUserFeatures(
        feature_store_pb2.GetUserFeaturesRequest(user_id="v1.abc"), timeout=5
    )
    assert resp.known_user
    f = resp.features
    assert list(f.recent_item_ids) == ["SKU2", "SKU1"]
    assert list(f.purchased_item_ids) == ["SKU2"]
    assert (f.event_count, f.purchase_count) == (2, 1)
    assert f.last_event_time.ToDatetime(tzinfo=UTC) == _ts(2).ToDatetime(tzinfo=UTC)
    # view weight 1 on home (SKU1), purchase weight 4 on toys (SKU2)
    assert [(a.category, round(a.score, 3)) for a in f.category_affinities] == [
        ("toys", 0.8),
        ("home", 0.2),
    ]
    unknown = await stub.GetUserFeatures(feature_store_pb2.GetUserFeaturesRequest(user_id="v1.x"))
    assert not unknown.known_user
    assert not unknown.features.HasField("last_event_time")


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            common_pb2.Event(event_id="e", user_id="u", item_id="SKU1", quantity=1),
            "events[1].type is not a known event type",
        ),
        (
            common_pb2.Event(
                event_id="e", user_id="u", item_id="SKU1", type=common_pb2.EVENT_TYPE_VIEW
            ),
            "events[1].quantity must be at least 1",
        ),
        (
            common_pb2.Event(
                event_id="e",
                user_id="u",
                item_id="SKU1",
                type=common_pb2.EVENT_TYPE_VIEW,
                quantity=1,
            ),
            "events[1].timestamp is missing",
        ),
        (
            common_pb2.Event(
                event_id="e",
                user_id="u",
                item_id="",
                type=common_pb2.EVENT_TYPE_VIEW,
                quantity=1,
                timestamp=_ts(0),
            ),
            "events[1].item_id is empty",
        ),
        (
            common_pb2.Event(
                event_id="e",
                user_id="u",
                item_id="SKU1",
                type=common_pb2.EVENT_TYPE_VIEW,
                quantity=1,
                timestamp=Timestamp(seconds=10**12),
            ),
            "events[1].timestamp is out of range",
        ),
    ],
)
async def test_malformed_events_are_invalid_argument_naming_the_field(
    stub: feature_store_pb2_grpc.FeatureStoreServiceStub, event: common_pb2.Event, message: str
) -> None:
    good = common_pb2.Event(
        event_id="ok",
        user_id="u",
        item_id="SKU1",
        type=common_pb2.EVENT_TYPE_VIEW,
        quantity=1,
        timestamp=_ts(0),
    )
    code, details = await _code(
        stub.IngestEvents(feature_store_pb2.IngestEventsRequest(events=[good, event]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(message)


async def test_size_and_range_limits(stub: feature_store_pb2_grpc.FeatureStoreServiceStub) -> None:
    too_many = [common_pb2.Event(event_id=f"e{i}") for i in range(51)]
    code, details = await _code(
        stub.IngestEvents(feature_store_pb2.IngestEventsRequest(events=too_many))
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "events has 51 entries; at most 50" in details
    code, details = await _code(
        stub.GetUserFeatures(
            feature_store_pb2.GetUserFeaturesRequest(user_id="u", max_recent_items=501)
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_recent_items must be between 0 and 500" in details
    code, details = await _code(
        stub.GetUserFeatures(feature_store_pb2.GetUserFeaturesRequest(user_id=""))
    )
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "user_id is empty")
    code, details = await _code(
        stub.GetPopularItems(feature_store_pb2.GetPopularItemsRequest(limit=0))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit must be between 1 and" in details
    code, details = await _code(
        stub.GetContributionBoundedCounts(
            feature_store_pb2.GetContributionBoundedCountsRequest(max_contributions_per_user=1)
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "kind must be" in details
    code, details = await _code(
        stub.GetContributionBoundedCounts(
            feature_store_pb2.GetContributionBoundedCountsRequest(
                kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_contributions_per_user must be between 1 and" in details
    for window, message in [
        (feature_store_pb2.EventWindow(start_time=_ts(5), end_time=_ts(5)), "before"),
        (feature_store_pb2.EventWindow(start_time=_ts(5)), "needs both"),
        (feature_store_pb2.EventWindow(), "needs both"),
    ]:
        code, details = await _code(
            stub.GetContributionBoundedCounts(
                feature_store_pb2.GetContributionBoundedCountsRequest(
                    kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY,
                    max_contributions_per_user=1,
                    event_window=window,
                )
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message in details
    code, details = await _code(
        stub.LoadCatalog(
            feature_store_pb2.LoadCatalogRequest(
                items=[common_pb2.ItemFeatures(item_id="Z", title="z", price=1.0)]
            )
        )
    )
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "items[0].category_path is empty",
    )
    code, details = await _code(
        stub.SetItemPopularity(
            feature_store_pb2.SetItemPopularityRequest(
                popularities=[feature_store_pb2.KeyCount(key="SKU1", count=1.0)]
            )
        )
    )
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "release_id is empty")


async def test_popularity_round_trip_for_the_privacy_gateway(
    stub: feature_store_pb2_grpc.FeatureStoreServiceStub,
) -> None:
    events = [
        common_pb2.Event(
            event_id=f"p{i}",
            user_id=f"v1.user{i % 3}",
            item_id=f"SKU{i % 4}",
            type=common_pb2.EVENT_TYPE_PURCHASE,
            timestamp=_ts(i),
            quantity=1,
        )
        for i in range(12)
    ]
    await stub.IngestEvents(feature_store_pb2.IngestEventsRequest(events=events))
    counts = await stub.GetContributionBoundedCounts(
        feature_store_pb2.GetContributionBoundedCountsRequest(
            kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY, max_contributions_per_user=1
        )
    )
    got = {c.key: c.count for c in counts.counts}
    assert set(got) == {f"SKU{i}" for i in range(6)}  # whole catalog, zeros included
    assert sum(got.values()) == 3  # three users, one contribution each
    trend = await stub.GetContributionBoundedCounts(
        feature_store_pb2.GetContributionBoundedCountsRequest(
            kind=feature_store_pb2.AGGREGATE_KIND_CATEGORY_TREND, max_contributions_per_user=5
        )
    )
    assert {c.key: c.count for c in trend.counts} == {"home": 3.0, "toys": 3.0}
    # Events at minutes 4..7 only ([4, 8)): user1 has SKU0 (4) and SKU3 (7), user2 SKU1,
    # user0 SKU2; bound 1 keeps user1's newest in the window.
    windowed = await stub.GetContributionBoundedCounts(
        feature_store_pb2.GetContributionBoundedCountsRequest(
            kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY,
            max_contributions_per_user=1,
            event_window=feature_store_pb2.EventWindow(start_time=_ts(4), end_time=_ts(8)),
        )
    )
    assert {c.key: c.count for c in windowed.counts if c.count} == {
        "SKU1": 1.0,
        "SKU2": 1.0,
        "SKU3": 1.0,
    }
    before = await stub.GetPopularItems(feature_store_pb2.GetPopularItemsRequest(limit=1))
    assert not before.release_id
    assert not before.HasField("release_time")
    applied_after = dt.datetime.now(dt.UTC)
    release = await stub.SetItemPopularity(
        feature_store_pb2.SetItemPopularityRequest(
            release_id="rel-7",
            popularities=[
                feature_store_pb2.KeyCount(key="SKU5", count=4.2),
                feature_store_pb2.KeyCount(key="SKU2", count=9.1),
            ],
        )
    )
    assert release.updated_count == 2
    popular = await stub.GetPopularItems(
        feature_store_pb2.GetPopularItemsRequest(limit=2, excluded_item_ids=["SKU2"])
    )
    assert popular.release_id == "rel-7"
    # The time the release was applied, so that callers can report its age.
    release_time = popular.release_time.ToDatetime(tzinfo=dt.UTC)
    assert applied_after - dt.timedelta(minutes=1) < release_time <= dt.datetime.now(dt.UTC)
    assert [(it.item_id, round(it.dp_popularity, 1)) for it in popular.items] == [
        ("SKU5", 4.2),
        ("SKU0", 0.0),
    ]


async def test_a_failed_bind_releases_the_executors(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = build_feature_store(_settings(f"sqlite:///{tmp_path / 'fs.sqlite'}", port=port))
        with pytest.raises(RuntimeError, match="bind"):
            await app.start()
    for executor in (app.executor, app.probe_executor):
        with pytest.raises(RuntimeError, match="after shutdown"):
            executor.submit(print)


async def test_unreachable_database_keeps_readiness_off_and_rpcs_unavailable() -> None:
    # Nothing listens on port 1: every connection attempt is refused.
    service = build_feature_store(_settings("postgresql+psycopg://postgres@127.0.0.1:1/none"))
    await service.start()
    try:
        async with create_channel(f"127.0.0.1:{service.port}", max_attempts=1) as channel:
            await asyncio.sleep(0.3)
            assert await _status(channel, "liveness") == SERVING
            assert await _status(channel) == NOT_SERVING
            stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
            code, details = await _code(
                stub.GetItemFeatures(
                    feature_store_pb2.GetItemFeaturesRequest(item_ids=["a"]), timeout=5
                )
            )
            assert code == grpc.StatusCode.UNAVAILABLE
            assert details == "the feature store database is unavailable"
            assert "127.0.0.1:1" not in details
    finally:
        await service.stop(0)


@pytest.mark.postgres
async def test_readiness_follows_a_database_outage(pg_schema_url: str) -> None:
    """A role that may no longer log in, with its sessions killed, is an outage as the
    service sees it; restoring the role must bring readiness back without a restart."""
    admin = sa.create_engine(pg_schema_url)
    role = f"fs_{uuid.uuid4().hex[:10]}"
    schema = pg_schema_url.rsplit("%3D", 1)[1]
    with admin.begin() as conn:
        conn.exec_driver_sql(f'create role "{role}" login')
        conn.exec_driver_sql(f'grant all on schema "{schema}" to "{role}"')
    url = sa.make_url(pg_schema_url).set(username=role).render_as_string(hide_password=False)
    service = build_feature_store(_settings(url))
    await service.start()

    def set_login(allowed: bool) -> None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'alter role "{role}" {"login" if allowed else "nologin"}')
            if not allowed:
                conn.execute(
                    sa.text(
                        "select pg_terminate_backend(pid) from pg_stat_activity "
                        "where usename = :role"
                    ),
                    {"role": role},
                )

    try:
        async with create_channel(f"127.0.0.1:{service.port}", max_attempts=1) as channel:
            await _wait_status(channel, SERVING)
            set_login(False)
            await _wait_status(channel, NOT_SERVING)
            stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
            code, _ = await _code(
                stub.GetPopularItems(feature_store_pb2.GetPopularItemsRequest(limit=1), timeout=5)
            )
            assert code == grpc.StatusCode.UNAVAILABLE
            set_login(True)
            await _wait_status(channel, SERVING)
            popular = await stub.GetPopularItems(
                feature_store_pb2.GetPopularItemsRequest(limit=1), timeout=5
            )
            assert list(popular.items) == []
    finally:
        await service.stop(0)
        with admin.begin() as conn:
            conn.execute(
                sa.text(
                    "select pg_terminate_backend(pid) from pg_stat_activity where usename = :role"
                ),
                {"role": role},
            )
            conn.exec_driver_sql(f'drop owned by "{role}"')
            conn.exec_driver_sql(f'drop role "{role}"')
        admin.dispose()


async def _spawn(tmp_path: Path) -> tuple[asyncio.subprocess.Process, int, list[str]]:
    """Start ``python -m services.feature_store`` on an SQLite file; return it, its port (from
    the JSON "listening" log line) and the log lines read so far."""
    env = {
        **os.environ,
        "RECSYS_FEATURE_STORE_PORT": "0",
        "RECSYS_FEATURE_STORE_DATABASE_URL": f"sqlite:///{tmp_path / 'fs.sqlite'}",
        "RECSYS_FEATURE_STORE_READINESS_INTERVAL_S": "0.2",
        "RECSYS_FEATURE_STORE_GRACE_PERIOD_S": "0.5",
        "RECSYS_FEATURE_STORE_TRACES_DIR": str(tmp_path / "traces"),
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.feature_store",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            break
        lines.append(line)
        record = json.loads(line)
        if record.get("msg") == "listening":
            return proc, int(record["port"]), lines
    proc.kill()
    await proc.wait()
    raise AssertionError("no listening line:\n" + "".join(lines))


async def test_module_entry_point_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    """``python -m services.feature_store`` end to end: logs JSON, turns ready, answers,
    drains on SIGTERM, and neither its logs nor its spans carry the user id it was sent."""
    proc, port, lines = await _spawn(tmp_path)
    try:
        secret_user = "v1.secret-pseudonym-0042"
        async with create_channel(f"127.0.0.1:{port}") as channel:
            await _wait_status(channel, SERVING, timeout_s=30)
            stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
            await stub.LoadCatalog(feature_store_pb2.LoadCatalogRequest(items=_catalog(2)))
            event = common_pb2.Event(
                event_id="x1",
                user_id=secret_user,
                item_id="SKU1",
                type=common_pb2.EVENT_TYPE_VIEW,
                timestamp=_ts(3),
                quantity=1,
            )
            ack = await stub.IngestEvents(feature_store_pb2.IngestEventsRequest(events=[event]))
            assert ack.accepted_count == 1
            features = await stub.GetUserFeatures(
                feature_store_pb2.GetUserFeaturesRequest(user_id=secret_user)
            )
            assert features.known_user
        proc.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
        lines.append(rest.decode())
        assert proc.returncode == 0, "".join(lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "".join(lines)
    assert '"msg": "stopped"' in output
    assert secret_user not in output
    spans = "".join(p.read_text() for p in (tmp_path / "traces").glob("*.jsonl"))
    assert "IngestEvents" in spans
    assert secret_user not in spans


async def test_acknowledged_events_survive_a_killed_process(tmp_path: Path) -> None:
    """Durable before ack: SIGKILL right after the last acknowledgement loses nothing."""
    proc, port, _ = await _spawn(tmp_path)
    try:
        async with create_channel(f"127.0.0.1:{port}") as channel:
            await _wait_status(channel, SERVING, timeout_s=30)
            stub = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
            await stub.LoadCatalog(feature_store_pb2.LoadCatalogRequest(items=_catalog(3)))
            for i in range(20):
                event = common_pb2.Event(
                    event_id=f"k{i}",
                    user_id="v1.killed",
                    item_id=f"SKU{i % 3}",
                    type=common_pb2.EVENT_TYPE_VIEW,
                    timestamp=_ts(i),
                    quantity=1,
                )
                ack = await stub.IngestEvents(feature_store_pb2.IngestEventsRequest(events=[event]))
                assert ack.accepted_count == 1
        proc.kill()
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    store = FeatureStore.from_url(f"sqlite:///{tmp_path / 'fs.sqlite'}")
    with store.engine.connect() as conn:
        stored = conn.scalar(sa.text("select count(*) from events"))
    features = store.get_user_features("v1.killed", 5)
    store.close()
    assert stored == 20
    assert features.event_count == 20
    assert features.recent_item_ids == ["SKU1", "SKU0", "SKU2"]


async def test_item_availability_over_grpc(
    stub: feature_store_pb2_grpc.FeatureStoreServiceStub,
) -> None:
    ids = [it.item_id for it in _catalog()]
    done = await stub.SetItemAvailability(
        feature_store_pb2.SetItemAvailabilityRequest(item_ids=[ids[0], "nope"], available=False)
    )
    assert (done.updated_count, list(done.missing_item_ids)) == (1, ["nope"])
    got = await stub.GetItemFeatures(feature_store_pb2.GetItemFeaturesRequest(item_ids=ids[:2]))
    assert [(f.item_id, f.HasField("available"), f.available) for f in got.items] == [
        (ids[0], True, False),
        (ids[1], True, True),
    ]
    popular = await stub.GetPopularItems(feature_store_pb2.GetPopularItemsRequest(limit=100))
    assert ids[0] not in {f.item_id for f in popular.items}
    # A load that states availability writes it; one that does not keeps it.
    item = _catalog()[0]
    item.title = "renamed"
    await stub.LoadCatalog(feature_store_pb2.LoadCatalogRequest(items=[item]))
    again = await stub.GetItemFeatures(feature_store_pb2.GetItemFeaturesRequest(item_ids=ids[:1]))
    assert (again.items[0].title, again.items[0].available) == ("renamed", False)
    item.available = True
    await stub.LoadCatalog(feature_store_pb2.LoadCatalogRequest(items=[item]))
    back = await stub.GetItemFeatures(feature_store_pb2.GetItemFeaturesRequest(item_ids=ids[:1]))
    assert back.items[0].available

    assert await _code(
        stub.SetItemAvailability(feature_store_pb2.SetItemAvailabilityRequest(item_ids=[]))
    ) == (grpc.StatusCode.INVALID_ARGUMENT, "item_ids must not be empty")
    code, message = await _code(
        stub.SetItemAvailability(
            feature_store_pb2.SetItemAvailabilityRequest(item_ids=[f"x{i}" for i in range(501)])
        )
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 500" in message
