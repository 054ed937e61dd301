"""The event-time window a differentially private release covers, shared by the privacy
gateway (its budget ledger composes releases by window), the feature store (it counts only the
window's events) and the release client.

A window is the half-open interval ``[start, end)`` of event time; "no window" (``None``
wherever a window is optional) means every event in the log, the interval (-inf, +inf).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.errors import InvalidArgument
from shared.gen.acme.recsys.v1 import feature_store_pb2


@dataclass(frozen=True)
class EventWindow:
    """``[start, end)`` in UTC; both ends time-zone aware, ``start < end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("an event window needs time-zone aware ends")
        if not self.start < self.end:
            raise ValueError("an event window's start must be before its end")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))

    def overlaps(self, other: EventWindow | None) -> bool:
        """Whether some instant lies in both; ``None`` (every event) overlaps everything."""
        return other is None or (self.start < other.end and other.start < self.end)

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def utc_day_before(now: datetime) -> EventWindow:
    """The last full UTC day before ``now``: what a daily release covers."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return EventWindow(today - timedelta(days=1), today)


def window_from_proto(
    message: feature_store_pb2.EventWindow, *, present: bool, field: str = "event_window"
) -> EventWindow | None:
    """The request's window, or None when the field is unset (``present`` is the caller's
    ``HasField``); a window set with a missing or inverted end is INVALID_ARGUMENT."""
    if not present:
        return None
    if not message.HasField("start_time") or not message.HasField("end_time"):
        raise InvalidArgument(f"{field} needs both start_time and end_time")
    start = message.start_time.ToDatetime(tzinfo=UTC)
    end = message.end_time.ToDatetime(tzinfo=UTC)
    if not start < end:
        raise InvalidArgument(f"{field}.start_time must be before {field}.end_time")
    return EventWindow(start, end)


def window_to_proto(window: EventWindow) -> feature_store_pb2.EventWindow:
    message = feature_store_pb2.EventWindow()
    message.start_time.FromDatetime(window.start)
    message.end_time.FromDatetime(window.end)
    return message
