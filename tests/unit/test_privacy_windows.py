"""The gateway's servicer with event-time windows: the window reaches the feature store and
the ledger, the budget is per window, and a window is validated before anything is read."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.ledger import Ledger, create_ledger_engine
from services.privacy_gateway.pii import PiiPolicy, PiiSanitizer
from services.privacy_gateway.servicer import PrivacyGatewayServicer
from shared.errors import FailedPrecondition, InvalidArgument
from shared.event_window import EventWindow, utc_day_before, window_from_proto, window_to_proto
from shared.gen.acme.recsys.v1 import feature_store_pb2, privacy_gateway_pb2
from shared.keyring import KeyRing
from tests.unit.test_privacy_release_statistics import EXACT, Context, FixedCounts

NOW = datetime(2026, 11, 24, 0, 17, tzinfo=UTC)
pb = privacy_gateway_pb2


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(
        create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
        epsilon_total=1.0,
        delta_total=0.0,
        clock=lambda: NOW,
    )
    ledger.create_schema()
    yield ledger
    ledger.close()


@pytest.fixture
def counts() -> FixedCounts:
    return FixedCounts(EXACT)


@pytest.fixture
def servicer(ledger: Ledger, counts: FixedCounts) -> Iterator[PrivacyGatewayServicer]:
    ring = KeyRing.generate()
    settings = PrivacyGatewaySettings(  # type: ignore[call-arg]
        epsilon_budget=1.0, delta_budget=0.0, dev_allow_loopback_privileged=True
    )
    with ThreadPoolExecutor(2) as executor:
        yield PrivacyGatewayServicer(
            settings,
            lambda: ring,
            PiiSanitizer(PiiPolicy()),
            ledger,
            counts,
            executor,
            clock=lambda: NOW,
        )


def _day(days_ago: int) -> EventWindow:
    day = utc_day_before(NOW)
    return EventWindow(day.start - timedelta(days=days_ago), day.end - timedelta(days=days_ago))


def _request(epsilon: float, window: EventWindow | None) -> pb.ReleaseAggregatesRequest:
    request = pb.ReleaseAggregatesRequest(
        kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY,
        epsilon=epsilon,
        mechanism=pb.NOISE_MECHANISM_LAPLACE,
        purpose="daily popularity",
    )
    if window is not None:
        request.event_window.CopyFrom(window_to_proto(window))
    return request


async def test_daily_releases_each_spend_their_own_day(
    servicer: PrivacyGatewayServicer, counts: FixedCounts, ledger: Ledger
) -> None:
    for days_ago in range(14, -1, -1):  # two weeks of daily releases at the whole budget
        reply = await servicer.ReleaseAggregates(_request(1.0, _day(days_ago)), Context())  # type: ignore[arg-type]
        assert reply.epsilon_remaining == pytest.approx(0.0, abs=1e-9)
    assert counts.windows == [_day(d) for d in range(14, -1, -1)]
    # The same day again, or a week across the days, finds the budget spent.
    for window in (_day(0), EventWindow(_day(6).start, _day(0).end), None):
        with pytest.raises(FailedPrecondition, match="privacy budget exhausted"):
            await servicer.ReleaseAggregates(_request(0.5, window), Context())  # type: ignore[arg-type]
    assert len(counts.windows) == 15  # refused before the store was asked
    budget = pb.GetPrivacyBudgetRequest(event_window=window_to_proto(_day(3)))
    state = await servicer.GetPrivacyBudget(budget, Context())  # type: ignore[arg-type]
    assert (state.epsilon_total, state.epsilon_spent) == (1.0, pytest.approx(1.0))
    [entry] = state.entries
    assert window_from_proto(entry.event_window, present=entry.HasField("event_window")) == _day(3)
    everything = await servicer.GetPrivacyBudget(pb.GetPrivacyBudgetRequest(), Context())  # type: ignore[arg-type]
    assert everything.epsilon_spent == pytest.approx(15.0)
    assert len(everything.entries) == 15
    # Tomorrow's window may be asked about (nothing spent), not released.
    tomorrow = pb.GetPrivacyBudgetRequest(event_window=window_to_proto(_day(-1)))
    assert (await servicer.GetPrivacyBudget(tomorrow, Context())).epsilon_spent == 0.0  # type: ignore[arg-type]


async def test_a_release_without_a_window_reads_every_event(
    servicer: PrivacyGatewayServicer, counts: FixedCounts
) -> None:
    reply = await servicer.ReleaseAggregates(_request(0.5, None), Context())  # type: ignore[arg-type]
    assert counts.windows == [None]
    assert reply.epsilon_remaining == pytest.approx(0.5)
    # It overlaps yesterday, so yesterday has only the other half left.
    with pytest.raises(FailedPrecondition):
        await servicer.ReleaseAggregates(_request(0.75, _day(0)), Context())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (feature_store_pb2.EventWindow(), "needs both start_time and end_time"),
        (
            feature_store_pb2.EventWindow(start_time=window_to_proto(_day(0)).start_time),
            "needs both start_time and end_time",
        ),
        (
            feature_store_pb2.EventWindow(
                start_time=window_to_proto(_day(0)).end_time,
                end_time=window_to_proto(_day(0)).start_time,
            ),
            "start_time must be before",
        ),
        (
            window_to_proto(EventWindow(NOW - timedelta(hours=1), NOW + timedelta(seconds=1))),
            "future",
        ),
    ],
)
async def test_a_bad_window_is_invalid_argument_and_reads_nothing(
    servicer: PrivacyGatewayServicer,
    counts: FixedCounts,
    window: feature_store_pb2.EventWindow,
    message: str,
) -> None:
    request = _request(0.5, None)
    request.event_window.CopyFrom(window)
    with pytest.raises(InvalidArgument, match=message):
        await servicer.ReleaseAggregates(request, Context())  # type: ignore[arg-type]
    assert counts.windows == []


async def test_a_window_ending_now_is_whole_and_allowed(
    servicer: PrivacyGatewayServicer, counts: FixedCounts
) -> None:
    window = EventWindow(NOW - timedelta(hours=1), NOW)
    await servicer.ReleaseAggregates(_request(0.5, window), Context())  # type: ignore[arg-type]
    assert counts.windows == [window]


def test_the_default_daily_window_is_the_previous_full_utc_day() -> None:
    assert utc_day_before(NOW) == EventWindow(
        datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)
    )
    # Just before midnight UTC in another zone: still the UTC calendar.
    tokyo = datetime(2026, 11, 24, 8, 59, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    assert utc_day_before(tokyo) == utc_day_before(NOW)
    with pytest.raises(ValueError, match="before its end"):
        EventWindow(NOW, NOW)
    with pytest.raises(ValueError, match="aware"):
        EventWindow(NOW.replace(tzinfo=None), NOW + timedelta(days=1))
