"""Online metrics: served lists (impressions) and the events attributed to them.

The orchestrator records one ``served_lists`` row per answered Recommend call (its
recommendation id, method, item count and experiment variants; no user id, no items), and
clients send the recommendation id and the 1-based position back with their events. A metric
row counts, over the lists served in a window:

- impressions: positions shown, i.e. the sum of the lists' item counts (per position p, the
  lists with at least p items);
- clicks, add-to-carts, purchases: distinct (list, position) pairs with at least one such
  attributed event, whenever the event arrived. A click is an attributed ``view`` (the shopper
  opened the item's page from the list). Repeats of one event type at one position count once,
  so every count is at most its impressions and a rate is a proportion.

Intervals are 95% Wilson score intervals (Wilson 1927), which stay inside [0, 1] and behave
for small counts and rates near 0, where the normal approximation does not; differences
between variants use Newcombe's hybrid score interval built from them (Newcombe 1998,
method 10). Both treat each impression as an independent trial: positions of one list are
correlated, so the intervals are somewhat narrow when one shopper's lists dominate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.feature_store.db import Database, chunks
from services.feature_store.model import IngestResult, ServedList, check_id, utcnow
from services.feature_store.schema import (
    EXPERIMENT_NAME_MAX,
    MAX_POSITION,
    METHOD_MAX,
    RECOMMENDATION_ID_MAX,
    events,
    served_list_assignments,
    served_lists,
)
from shared.errors import InvalidArgument
from shared.event_window import EventWindow

Z_95 = 1.959963984540054
# The event types a metric row counts, by the name of its rate.
RATES = {"clicks": "view", "add_to_carts": "add_to_cart", "purchases": "purchase"}
CONTROL = "control"


@dataclass(frozen=True)
class Rate:
    """``count`` successes out of ``trials`` with its rate and 95% Wilson interval."""

    count: int
    trials: int

    @property
    def rate(self) -> float:
        return self.count / self.trials if self.trials else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.count, self.trials)


@dataclass
class MetricRow:
    """The metrics of one position, method or variant (``key``)."""

    key: str
    served_lists: int = 0
    impressions: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def rate(self, name: str) -> Rate:
        """``name`` is one of RATES: clicks, add_to_carts, purchases."""
        return Rate(self.counts.get(RATES[name], 0), self.impressions)


@dataclass(frozen=True)
class OnlineMetricsReport:
    by_position: list[MetricRow]
    by_method: list[MetricRow]
    by_variant: list[MetricRow]
    total: MetricRow
    unmatched_events: int


@dataclass(frozen=True)
class Difference:
    """A variant's rate minus the control's, with its 95% interval."""

    difference: float
    low: float
    high: float


@dataclass(frozen=True)
class VariantReport:
    metrics: MetricRow
    # Per rate name (clicks, ...): the difference from the control; empty for the control.
    differences: dict[str, Difference]


@dataclass(frozen=True)
class ExperimentReport:
    experiment: str
    control_variant: str
    variants: list[VariantReport]


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(a: Rate, b: Rate, z: float = Z_95) -> Difference:
    """``a.rate - b.rate`` with Newcombe's hybrid score interval (method 10 of Newcombe,
    "Interval estimation for the difference between independent proportions", 1998)."""
    p1, p2 = a.rate, b.rate
    l1, u1 = wilson_interval(a.count, a.trials, z)
    l2, u2 = wilson_interval(b.count, b.trials, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Difference(diff, max(-1.0, low), min(1.0, high))


class OnlineMetrics:
    """Writes served lists and reads the online metrics and experiment reports."""

    def __init__(self, database: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = database
        self._clock = clock

    def record_served_lists(self, batch: Sequence[ServedList]) -> IngestResult:
        """Store served lists, idempotent by recommendation id; the whole batch is rejected
        when one is malformed."""
        for i, served in enumerate(batch):
            _validate_served(i, served)
        unique = {s.recommendation_id: s for s in reversed(batch)}
        if not unique:
            return IngestResult(0, 0)
        now = self._clock()
        rows = [
            {
                "recommendation_id": s.recommendation_id,
                "served_at": s.served_at,
                "method": s.method,
                "item_count": s.item_count,
                "recorded_at": now,
            }
            for s in sorted(unique.values(), key=lambda s: s.recommendation_id)
        ]
        stmt = (
            self._db.insert(served_lists)
            .on_conflict_do_nothing(index_elements=["recommendation_id"])
            .returning(served_lists.c.recommendation_id)
        )
        with self._db.write() as conn:
            inserted: set[str] = set()
            for chunk in chunks(rows):
                inserted.update(conn.execute(stmt, list(chunk)).scalars())
            assignments = [
                {"recommendation_id": rid, "experiment": e, "variant": v}
                for rid in sorted(inserted)
                for e, v in unique[rid].assignments
            ]
            for part in chunks(assignments):
                conn.execute(sa.insert(served_list_assignments), list(part))
        return IngestResult(accepted=len(inserted), duplicates=len(batch) - len(inserted))

    def online_metrics(self, window: EventWindow) -> OnlineMetricsReport:
        """Metrics of the lists served in ``window``, per position, method and variant."""
        in_window = (
            served_lists.c.served_at >= window.start,
            served_lists.c.served_at < window.end,
        )

        def keyed(key: Any) -> sa.Subquery:
            return (
                sa.select(
                    served_lists.c.recommendation_id,
                    served_lists.c.item_count,
                    key.label("key"),
                )
                .where(*in_window)
                .subquery()
            )

        variant_key = (
            served_list_assignments.c.experiment
            + sa.literal("/")
            + served_list_assignments.c.variant
        )
        assigned = (
            sa.select(
                served_lists.c.recommendation_id,
                served_lists.c.item_count,
                variant_key.label("key"),
            )
            .join(
                served_list_assignments,
                served_list_assignments.c.recommendation_id == served_lists.c.recommendation_id,
            )
            .where(*in_window)
            .subquery()
        )
        with self._db.snapshot() as conn:
            by_count = conn.execute(
                sa.select(served_lists.c.item_count, sa.func.count())
                .where(*in_window)
                .group_by(served_lists.c.item_count)
            ).all()
            all_lists = keyed(sa.literal("all"))
            hits = _hits(all_lists)
            position_hits = conn.execute(
                sa.select(hits.c.position, hits.c.event_type, sa.func.count()).group_by(
                    hits.c.position, hits.c.event_type
                )
            ).all()
            total = _rows(conn, all_lists)
            by_method = _rows(conn, keyed(served_lists.c.method))
            by_variant = _rows(conn, assigned)
            unmatched = _unmatched(conn, window)
        return OnlineMetricsReport(
            by_position=_positions(by_count, position_hits),
            by_method=by_method,
            by_variant=by_variant,
            total=total[0] if total else MetricRow("all"),
            unmatched_events=unmatched,
        )

    def experiment_report(
        self, experiment: str, window: EventWindow, control: str = ""
    ) -> ExperimentReport:
        """Each variant of ``experiment`` with lists in ``window`` and its differences from
        the control variant (``control``, else "control", else the first by name)."""
        check_id(experiment, "experiment", EXPERIMENT_NAME_MAX)
        with self._db.snapshot() as conn:
            assigned = (
                sa.select(
                    served_lists.c.recommendation_id,
                    served_lists.c.item_count,
                    served_list_assignments.c.variant.label("key"),
                )
                .join(
                    served_list_assignments,
                    served_list_assignments.c.recommendation_id == served_lists.c.recommendation_id,
                )
                .where(
                    served_list_assignments.c.experiment == experiment,
                    served_lists.c.served_at >= window.start,
                    served_lists.c.served_at < window.end,
                )
                .subquery()
            )
            rows = _rows(conn, assigned)
        if not rows:
            return ExperimentReport(experiment, control, [])
        by_name = {r.key: r for r in rows}
        if control and control not in by_name:
            raise InvalidArgument(
                f"control_variant {control!r} served no lists of {experiment!r} in the window"
            )
        chosen = control or (CONTROL if CONTROL in by_name else rows[0].key)
        base = by_name[chosen]
        return ExperimentReport(
            experiment,
            chosen,
            [
                VariantReport(
                    r,
                    {}
                    if r.key == chosen
                    else {n: newcombe_difference(r.rate(n), base.rate(n)) for n in RATES},
                )
                for r in rows
            ],
        )


def _hits(lists: sa.Subquery) -> sa.Subquery:
    """Distinct (list, position, event type) of the events attributed to ``lists`` at a
    position the list showed, with the list's columns."""
    return (
        sa.select(
            *lists.c,
            events.c.position,
            events.c.event_type,
        )
        .distinct()
        .join(events, events.c.recommendation_id == lists.c.recommendation_id)
        .where(events.c.position >= 1, events.c.position <= lists.c.item_count)
        .subquery()
    )


def _rows(conn: sa.Connection, lists: sa.Subquery) -> list[MetricRow]:
    """Metric rows of ``lists`` (recommendation_id, item_count, key) grouped by key."""
    served: Sequence[Any] = conn.execute(
        sa.select(
            lists.c.key, sa.func.count(), sa.func.coalesce(sa.func.sum(lists.c.item_count), 0)
        )
        .group_by(lists.c.key)
        .order_by(lists.c.key)
    ).all()
    out = {k: MetricRow(str(k), int(n), int(shown)) for k, n, shown in served}
    hits = _hits(lists)
    counted: Sequence[Any] = conn.execute(
        sa.select(hits.c.key, hits.c.event_type, sa.func.count()).group_by(
            hits.c.key, hits.c.event_type
        )
    ).all()
    for k, event_type, n in counted:
        out[str(k)].counts[str(event_type)] = int(n)
    return list(out.values())


def _positions(by_count: Iterable[Any], hits: Iterable[Any]) -> list[MetricRow]:
    lists_with: defaultdict[int, int] = defaultdict(int)
    for count, n in by_count:
        lists_with[int(count)] += int(n)
    longest = max(lists_with, default=0)
    rows = []
    remaining = sum(lists_with.values())
    for position in range(1, longest + 1):
        remaining -= lists_with.get(position - 1, 0)
        rows.append(MetricRow(str(position), remaining, remaining))
    for position, event_type, n in hits:
        rows[int(position) - 1].counts[event_type] = int(n)
    return rows


def _unmatched(conn: sa.Connection, window: EventWindow) -> int:
    """Attributed events of ``window`` (by event time) that no served list accounts for."""
    joined = events.outerjoin(
        served_lists, served_lists.c.recommendation_id == events.c.recommendation_id
    )
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(joined)
            .where(
                events.c.recommendation_id.is_not(None),
                events.c.event_time >= window.start,
                events.c.event_time < window.end,
                sa.or_(
                    served_lists.c.recommendation_id.is_(None),
                    events.c.position.is_(None),
                    events.c.position > served_lists.c.item_count,
                ),
            )
        ).scalar_one()
    )


def _validate_served(i: int, served: ServedList) -> None:
    name = f"served_lists[{i}]"
    check_id(served.recommendation_id, f"{name}.recommendation_id", RECOMMENDATION_ID_MAX)
    if served.served_at is None:
        raise InvalidArgument(f"{name}.served_time is missing")
    check_id(served.method, f"{name}.method", METHOD_MAX)
    if not 0 <= served.item_count <= MAX_POSITION:
        raise InvalidArgument(f"{name}.item_count must be between 0 and {MAX_POSITION}")
    seen = set()
    for j, (experiment, variant) in enumerate(served.assignments):
        check_id(experiment, f"{name}.assignments[{j}].experiment", EXPERIMENT_NAME_MAX)
        check_id(variant, f"{name}.assignments[{j}].variant", EXPERIMENT_NAME_MAX)
        if experiment in seen:
            raise InvalidArgument(f"{name}.assignments[{j}].experiment is repeated")
        seen.add(experiment)
