"""Attribution end to end on real services: the orchestrator (through its composition root),
the real privacy gateway and the real feature store on PostgreSQL. Retrieval, ranker and
reranker are down (a port nothing listens on), so every list comes from the catalog-order
fallback: the recommendation id, the experiment and the served list do not depend on the
path that answered.

A shopper's variant comes from the pseudonym the gateway issues, the served lists reach the
store in the background, clicks logged with the recommendation id and position are counted
per variant and per position, and a resent event counts once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from client.cli import (
    format_experiment_report,
    format_online_metrics,
    format_recommendations,
    shopper_event,
)
from services.feature_store.app import FeatureStoreApp, build_feature_store
from services.orchestrator.app import Orchestrator, build_orchestrator
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.experiments import ExperimentsConfig, assign
from services.privacy_gateway.app import build_privacy_gateway
from services.privacy_gateway.config import PrivacyGatewaySettings
from shared.channels import create_channel
from shared.gen.acme.recsys.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    privacy_gateway_pb2,
    privacy_gateway_pb2_grpc,
)
from shared.keyring import KeyRing
from tests.integration.conftest import dead_addr
from tests.service.test_feature_store import SERVING, _catalog, _settings, _wait_status

K = 3
USERS = [f"shopper-{i:03d}" for i in range(40)]
EXPERIMENTS = {
    "version": "2026-12-01.1",
    "experiments": [
        {
            "name": "diversity",
            "salt": "attr-test-salt-1",
            "variants": [
                {"name": "control", "share": 0.5},
                {"name": "mmr-high", "share": 0.5, "method": "mmr", "tradeoff": 0.9},
            ],
        }
    ],
}


@dataclass
class Services:
    store: FeatureStoreApp
    orchestrator: Orchestrator
    api: orchestrator_pb2_grpc.RecommendationServiceStub
    store_stub: feature_store_pb2_grpc.FeatureStoreServiceStub
    gateway: privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub


@pytest.fixture
async def services(pg_schema_url: str, tmp_path: Path) -> AsyncIterator[Services]:
    experiments = tmp_path / "experiments.json"
    experiments.write_text(json.dumps(EXPERIMENTS))
    async with build_feature_store(_settings(pg_schema_url)) as store:
        store_addr = f"127.0.0.1:{store.port}"
        async with create_channel(store_addr) as probe:
            await _wait_status(probe, SERVING)  # migrated before anyone reads it
        gateway_settings = PrivacyGatewaySettings(
            port=0,
            key_ring_json=SecretStr(KeyRing.generate().to_json()),
            database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            feature_store_address=store_addr,
            grace_period_s=0.2,
        )  # type: ignore[call-arg]
        async with build_privacy_gateway(gateway_settings) as gateway:
            down = dead_addr()
            settings = OrchestratorSettings(
                port=0,
                privacy_gateway_addr=f"127.0.0.1:{gateway.port}",
                feature_store_addr=store_addr,
                retrieval_addr=down,
                ranker_addr=down,
                reranker_addr=down,
                downstream_max_attempts=1,
                default_deadline_s=5.0,
                grace_period_s=0.2,
                experiments_file=str(experiments),
            )  # type: ignore[call-arg]
            async with (
                build_orchestrator(settings) as orchestrator,
                create_channel(f"127.0.0.1:{orchestrator.port}", max_attempts=1) as api_ch,
                create_channel(store_addr) as store_ch,
                create_channel(f"127.0.0.1:{gateway.port}") as gw_ch,
            ):
                await _wait_status(gw_ch, SERVING)
                store_stub = feature_store_pb2_grpc.FeatureStoreServiceStub(store_ch)
                await store_stub.LoadCatalog(
                    feature_store_pb2.LoadCatalogRequest(items=_catalog(8))
                )
                yield Services(
                    store,
                    orchestrator,
                    orchestrator_pb2_grpc.RecommendationServiceStub(api_ch),
                    store_stub,
                    privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(gw_ch),
                )


def _window(hours: float = 1.0) -> feature_store_pb2.EventWindow:
    now = datetime.now(UTC)
    window = feature_store_pb2.EventWindow()
    window.start_time.FromDatetime(now - timedelta(hours=hours))
    window.end_time.FromDatetime(now + timedelta(minutes=5))
    return window


async def _served_lists(s: Services, want: int, timeout_s: float = 10.0) -> int:
    """Wait until the store holds ``want`` served lists (they are sent in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await s.store_stub.GetOnlineMetrics(
            feature_store_pb2.GetOnlineMetricsRequest(window=_window())
        )
        if got.total.served_lists >= want or time.monotonic() > deadline:
            return int(got.total.served_lists)
        await asyncio.sleep(0.05)


async def test_attributed_clicks_of_two_variants_are_reported_per_variant(
    services: Services,
) -> None:
    s = services
    answers = {}
    for user in USERS:
        answers[user] = await s.api.Recommend(
            orchestrator_pb2.RecommendRequest(user_ref=user, k=K), timeout=10
        )
    ids = [a.recommendation_id for a in answers.values()]
    assert len(set(ids)) == len(USERS)
    assert all(len(i) >= 22 for i in ids)
    assert not any(user in rid for user in USERS for rid in ids)
    variant = {u: a.experiment_assignments[0].variant for u, a in answers.items()}
    assert all(
        [x.experiment for x in a.experiment_assignments] == ["diversity"] for a in answers.values()
    )
    assert {a.versions["experiments"] for a in answers.values()} == {"2026-12-01.1"}
    shown = format_recommendations(answers[USERS[0]])  # what `recsys recommend` prints
    assert f"recommendation id: {ids[0]}" in shown
    assert f"experiments: diversity={answers[USERS[0]].experiment_assignments[0].variant}" in shown
    # The variant is the one the pseudonym (not the raw reference) hashes to, and sticky.
    pseudonyms = await s.gateway.Pseudonymize(
        privacy_gateway_pb2.PseudonymizeRequest(user_refs=USERS)
    )
    config = ExperimentsConfig.model_validate(EXPERIMENTS)
    for user, pseudonym in zip(USERS, pseudonyms.pseudonyms, strict=True):
        assert variant[user] == assign(config, pseudonym)[0].variant.name
    again = await s.api.Recommend(
        orchestrator_pb2.RecommendRequest(user_ref=USERS[0], k=K), timeout=10
    )
    assert again.experiment_assignments[0].variant == variant[USERS[0]]
    assert again.recommendation_id != answers[USERS[0]].recommendation_id
    groups = {v: [u for u in USERS if variant[u] == v] for v in ("control", "mmr-high")}
    assert all(len(g) >= 5 for g in groups.values()), groups  # 40 shoppers, shares 0.5/0.5

    assert await _served_lists(s, len(USERS) + 1) == len(USERS) + 1

    # Control: a click at position 1 in every list. Treatment: clicks at positions 1 and 2,
    # and an add-to-cart at position 1 in its first three lists.
    events = []
    for user in groups["control"]:
        a = answers[user]
        events.append(_event(user, a, 1, "view"))
    for n, user in enumerate(groups["mmr-high"]):
        a = answers[user]
        events += [_event(user, a, 1, "view"), _event(user, a, 2, "view")]
        if n < 3:
            events.append(_event(user, a, 1, "add_to_cart"))
    # Events without attribution still work, and a click resent with its id counts once.
    events.append(shopper_event(USERS[0], "SKU1", "purchase", event_id="plain-1"))
    accepted = 0
    for start in range(0, len(events), 25):  # the store's test limit is 50 per call
        batch = events[start : start + 25]
        logged = await s.api.LogEvents(orchestrator_pb2.LogEventsRequest(events=batch), timeout=10)
        accepted += logged.accepted_count
    assert accepted == len(events)
    resent = await s.api.LogEvents(orchestrator_pb2.LogEventsRequest(events=events[:2]), timeout=10)
    assert (resent.accepted_count, resent.duplicate_count) == (0, 2)
    # Another view event at the same position is a second event but not a second click.
    repeat = _event(groups["control"][0], answers[groups["control"][0]], 1, "view", "again")
    await s.api.LogEvents(orchestrator_pb2.LogEventsRequest(events=[repeat]), timeout=10)

    report = await s.store_stub.GetExperimentReport(
        feature_store_pb2.GetExperimentReportRequest(experiment="diversity", window=_window())
    )
    assert report.control_variant == "control"
    rows = {v.metrics.key: v for v in report.variants}
    assert set(rows) == {"control", "mmr-high"}
    lists = {v: len(g) + (1 if USERS[0] in g else 0) for v, g in groups.items()}
    for name, row in rows.items():
        assert row.metrics.served_lists == lists[name]
        assert row.metrics.impressions == K * lists[name]
    assert rows["control"].metrics.clicks.count == len(groups["control"])
    assert rows["mmr-high"].metrics.clicks.count == 2 * len(groups["mmr-high"])
    assert rows["mmr-high"].metrics.add_to_carts.count == 3
    assert rows["control"].metrics.add_to_carts.count == 0
    treated = rows["mmr-high"].metrics.clicks
    control = rows["control"].metrics.clicks
    assert treated.rate == pytest.approx(treated.count / rows["mmr-high"].metrics.impressions)
    assert treated.ci_low < treated.rate < treated.ci_high
    diff = rows["mmr-high"].click_difference
    assert diff.difference == pytest.approx(treated.rate - control.rate)
    assert diff.ci_low < diff.difference < diff.ci_high
    assert not rows["control"].HasField("click_difference")
    text = format_experiment_report(report)
    assert "mmr-high" in text
    assert "control" in text

    metrics = await s.store_stub.GetOnlineMetrics(
        feature_store_pb2.GetOnlineMetricsRequest(window=_window())
    )
    by_position = {r.key: r for r in metrics.by_position}
    assert set(by_position) == {"1", "2", "3"}
    assert by_position["1"].clicks.count == len(USERS)  # every first list, a click at 1
    assert by_position["2"].clicks.count == len(groups["mmr-high"])
    assert by_position["3"].clicks.count == 0
    assert all(r.impressions == len(USERS) + 1 for r in by_position.values())
    assert [r.key for r in metrics.by_method] == ["catalog_order"]
    assert {r.key for r in metrics.by_variant} == {"diversity/control", "diversity/mmr-high"}
    assert metrics.unmatched_event_count == 0
    assert "by position" in format_online_metrics(metrics)

    # The store keeps the id and position with the event, and nothing personal with a list.
    with s.store.store.engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT recommendation_id, position FROM events WHERE event_id = :e"),
            {"e": events[0].event_id},
        ).one()
        plain = conn.execute(
            sa.text("SELECT recommendation_id, position FROM events WHERE event_id = 'plain-1'")
        ).one()
        columns = set(conn.execute(sa.text("SELECT * FROM served_lists LIMIT 1")).keys())
    assert tuple(stored) == (events[0].recommendation_id, 1)
    assert tuple(plain) == (None, None)
    assert columns == {"recommendation_id", "served_at", "method", "item_count", "recorded_at"}


def _event(
    user: str, answer: orchestrator_pb2.RecommendResponse, position: int, kind: str, tag: str = ""
) -> orchestrator_pb2.ShopperEvent:
    return shopper_event(
        user,
        answer.items[position - 1].item_id,
        kind,
        event_id=f"{answer.recommendation_id}-{position}-{kind}{tag}",
        recommendation_id=answer.recommendation_id,
        position=position,
    )


async def test_attribution_mistakes_are_invalid_argument(services: Services) -> None:
    s = services
    cases = {
        "needs a recommendation_id": shopper_event("u", "SKU1", "view", position=2),
        "position must not be negative": shopper_event(
            "u", "SKU1", "view", recommendation_id="abc", position=-1
        ),
        "may hold only letters": shopper_event(
            "u", "SKU1", "view", recommendation_id="a b", position=1
        ),
        "at most 64": shopper_event("u", "SKU1", "view", recommendation_id="a" * 65),
    }
    for message, event in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await s.api.LogEvents(orchestrator_pb2.LogEventsRequest(events=[event]), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await s.store_stub.GetOnlineMetrics(feature_store_pb2.GetOnlineMetricsRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "window" in (err.value.details() or "")
    # A list the orchestrator never recorded (a wrong id) is counted as unmatched only.
    stray = shopper_event("u", "SKU1", "view", recommendation_id="never-served", position=1)
    await s.api.LogEvents(orchestrator_pb2.LogEventsRequest(events=[stray]), timeout=10)
    got = await s.store_stub.GetOnlineMetrics(
        feature_store_pb2.GetOnlineMetricsRequest(window=_window())
    )
    assert got.unmatched_event_count == 1
    assert got.total.clicks.count == 0
