"""The PII policy applied to free-form request contexts before they reach any other service.

Each field name (matched case-insensitively) has one rule:

- ``drop``: direct identifiers (email, phone, name, address, account and device ids).
- ``keep``: known-safe fields (page, device, locale, country, referrer category, ...); a kept
  value is still dropped if it is too long or looks like an email address.
- ``ip_prefix``: an IP address becomes its network (/24 for IPv4, /48 for IPv6 by default).
- ``age_band``: an ISO birth date becomes an age band such as ``25-34``.
- ``latitude`` / ``longitude`` / ``location``: coordinates rounded to ``coordinate_decimals``
  (1 decimal ~ 11 km), i.e. a region rather than an address.
- ``postal_prefix``: a postal code cut to its first ``postal_prefix_length`` characters.
- ``url_path``: a URL reduced to its path (query strings and fragments often carry emails,
  tokens or search terms).

Fields without a rule follow ``unknown`` (``drop`` by default), so a new client field never
leaks by accident. A value that a generalizing rule cannot parse is dropped, not passed on.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

RULES = frozenset(
    {
        "drop",
        "keep",
        "ip_prefix",
        "age_band",
        "latitude",
        "longitude",
        "location",
        "postal_prefix",
        "url_path",
    }
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

DEFAULT_FIELDS: dict[str, str] = {
    **dict.fromkeys(
        [
            "email",
            "e_mail",
            "phone",
            "phone_number",
            "mobile",
            "name",
            "first_name",
            "last_name",
            "full_name",
            "address",
            "street",
            "user_id",
            "customer_id",
            "account_id",
            "device_id",
            "advertising_id",
            "session_id",
            "cookie",
            "ssn",
            "credit_card",
            "card_number",
            "password",
        ],
        "drop",
    ),
    **dict.fromkeys(["ip", "ip_address", "client_ip"], "ip_prefix"),
    **dict.fromkeys(["birth_date", "date_of_birth", "dob"], "age_band"),
    **dict.fromkeys(["lat", "latitude"], "latitude"),
    **dict.fromkeys(["lon", "lng", "longitude"], "longitude"),
    **dict.fromkeys(["location", "geo"], "location"),
    **dict.fromkeys(["postal_code", "postcode", "zip", "zip_code"], "postal_prefix"),
    "page": "url_path",
    **dict.fromkeys(
        [
            "device",
            "device_type",
            "platform",
            "os",
            "browser",
            "locale",
            "language",
            "country",
            "currency",
            "referrer_category",
            "app_version",
            "surface",
            "channel",
            "timezone",
        ],
        "keep",
    ),
}


def _today_utc() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class SanitizedContext:
    """The context after the policy, with the names of the fields dropped and generalized."""

    context: dict[str, str]
    dropped_fields: list[str]
    generalized_fields: list[str]


@dataclass(frozen=True)
class PiiPolicy:
    """Per-field rules and the parameters of the generalizing rules."""

    fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    unknown: str = "drop"
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    age_bands: tuple[int, ...] = (18, 25, 35, 45, 55, 65)
    coordinate_decimals: int = 1
    postal_prefix_length: int = 3
    max_value_length: int = 256

    def __post_init__(self) -> None:
        bad = sorted({r for r in self.fields.values() if r not in RULES})
        if bad:
            raise ValueError(f"unknown PII rule(s) {bad}; known: {sorted(RULES)}")
        if self.unknown not in {"drop", "keep"}:
            raise ValueError("unknown must be 'drop' or 'keep'")
        if not 0 <= self.ipv4_prefix <= 32 or not 0 <= self.ipv6_prefix <= 128:
            raise ValueError("IP prefixes must fit the address length")
        if list(self.age_bands) != sorted(set(self.age_bands)) or not self.age_bands:
            raise ValueError("age_bands must be strictly increasing ages")
        if not 0 <= self.coordinate_decimals <= 3:
            raise ValueError("coordinate_decimals must be in [0, 3]")
        object.__setattr__(self, "fields", {k.lower(): v for k, v in self.fields.items()})

    @classmethod
    def from_file(cls, path: Path | str) -> PiiPolicy:
        """A policy from JSON: ``{"fields": {...}, "unknown": "drop", ...}``; ``fields`` are
        merged over the defaults unless ``"replace_defaults": true``."""
        doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
        fields = {} if doc.pop("replace_defaults", False) else dict(DEFAULT_FIELDS)
        fields.update({k.lower(): v for k, v in doc.pop("fields", {}).items()})
        if "age_bands" in doc:
            doc["age_bands"] = tuple(doc["age_bands"])
        return cls(fields=fields, **doc)

    def rule_for(self, name: str) -> str:
        return self.fields.get(name.strip().lower(), self.unknown)


class PiiSanitizer:
    """Applies a PiiPolicy; ``today`` is a parameter so age bands are testable."""

    def __init__(self, policy: PiiPolicy, today: Callable[[], date] = _today_utc) -> None:
        self.policy = policy
        self._today = today

    def sanitize(self, context: Mapping[str, str]) -> SanitizedContext:
        kept: dict[str, str] = {}
        dropped: list[str] = []
        generalized: list[str] = []
        for name, value in context.items():
            rule = self.policy.rule_for(name)
            out = self._apply(rule, value)
            if out is None:
                dropped.append(name)
                continue
            kept[name] = out
            if rule != "keep":
                generalized.append(name)
        return SanitizedContext(kept, sorted(dropped), sorted(generalized))

    def _apply(self, rule: str, value: str) -> str | None:
        value = value.strip()
        if rule == "drop" or not value or len(value) > self.policy.max_value_length:
            return None
        try:
            return self._generalize(rule, value)
        except ValueError:
            return None

    def _generalize(self, rule: str, value: str) -> str | None:
        p = self.policy
        if rule == "keep":
            return None if _EMAIL.search(value) else value
        if rule == "ip_prefix":
            return ip_network_prefix(value, p.ipv4_prefix, p.ipv6_prefix)
        if rule == "age_band":
            return age_band(date.fromisoformat(value), self._today(), p.age_bands)
        if rule == "latitude":
            return _round_coordinate(value, 90.0, p.coordinate_decimals)
        if rule == "longitude":
            return _round_coordinate(value, 180.0, p.coordinate_decimals)
        if rule == "location":
            lat, lon = value.split(",")
            return (
                f"{_round_coordinate(lat, 90.0, p.coordinate_decimals)},"
                f"{_round_coordinate(lon, 180.0, p.coordinate_decimals)}"
            )
        if rule == "postal_prefix":
            compact = value.replace(" ", "").upper()
            return compact[: p.postal_prefix_length] if compact.isalnum() else None
        if rule == "url_path":
            path = urlsplit(value).path or "/"
            return None if _EMAIL.search(path) else path
        raise ValueError(f"unhandled rule {rule}")


def ip_network_prefix(value: str, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> str:
    """The network of ``value`` (e.g. ``203.0.113.0/24``); IPv4-mapped IPv6 counts as IPv4."""
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def age_band(birth: date, today: date, bands: tuple[int, ...]) -> str:
    """``<18``, ``18-24``, ..., ``65+`` for the default bands; implausible dates raise."""
    age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    if age < 0 or age > 130:
        raise ValueError("implausible birth date")
    if age < bands[0]:
        return f"<{bands[0]}"
    for low, high in itertools.pairwise(bands):
        if low <= age < high:
            return f"{low}-{high - 1}"
    return f"{bands[-1]}+"


def _round_coordinate(value: str, limit: float, decimals: int) -> str:
    x = float(value)
    if not -limit <= x <= limit:
        raise ValueError("coordinate out of range")
    return f"{round(x, decimals):.{decimals}f}"
