"""The PII policy on request contexts."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from services.privacy_gateway.pii import PiiPolicy, PiiSanitizer, age_band, ip_network_prefix

TODAY = date(2026, 11, 23)


def _sanitize(context: dict[str, str], policy: PiiPolicy | None = None):  # type: ignore[no-untyped-def]
    return PiiSanitizer(policy or PiiPolicy(), today=lambda: TODAY).sanitize(context)


def test_direct_identifiers_are_dropped_and_safe_fields_kept() -> None:
    out = _sanitize(
        {
            "email": "ann@example.com",
            "Phone": "+44 20 7946 0958",
            "name": "Ann Smith",
            "device_id": "a1b2",
            "device": "mobile",
            "locale": "en-GB",
            "country": "United Kingdom",
            "referrer_category": "search",
        }
    )
    assert out.context == {
        "device": "mobile",
        "locale": "en-GB",
        "country": "United Kingdom",
        "referrer_category": "search",
    }
    assert out.dropped_fields == ["Phone", "device_id", "email", "name"]
    assert out.generalized_fields == []


def test_unknown_fields_are_dropped_by_default_and_kept_only_when_configured() -> None:
    context = {"favourite_colour": "teal", "device": "tv"}
    assert _sanitize(context).context == {"device": "tv"}
    assert _sanitize(context).dropped_fields == ["favourite_colour"]
    keep = PiiPolicy(unknown="keep")
    assert _sanitize(context, keep).context == context


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("ip", "203.0.113.77", "203.0.113.0/24"),
        ("client_ip", "2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::/48"),
        ("ip_address", "::ffff:198.51.100.9", "198.51.100.0/24"),
        ("birth_date", "1990-11-24", "35-44"),
        ("birth_date", "1990-11-23", "35-44"),
        ("dob", "2010-01-01", "<18"),
        ("date_of_birth", "1950-06-01", "65+"),
        ("lat", "51.50735", "51.5"),
        ("lon", "-0.12776", "-0.1"),
        ("location", "51.50735,-0.12776", "51.5,-0.1"),
        ("postal_code", "sw1a 1aa", "SW1"),
        ("page", "https://shop.example/p/123?email=ann%40example.com#top", "/p/123"),
    ],
)
def test_generalizing_rules(field: str, value: str, expected: str) -> None:
    out = _sanitize({field: value})
    assert out.context == {field: expected}
    assert out.generalized_fields == [field]
    assert out.dropped_fields == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ip", "999.1.1.1"),
        ("birth_date", "23/11/1990"),
        ("birth_date", "2030-01-01"),
        ("lat", "91.0"),
        ("lon", "nan"),
        ("location", "51.5"),
        ("postal_code", "SW1A-1AA;drop"),
        ("page", "/account/ann@example.com"),
        ("country", "ann@example.com"),
        ("device", "x" * 300),
        ("device", "   "),
    ],
)
def test_values_that_cannot_be_generalized_safely_are_dropped(field: str, value: str) -> None:
    out = _sanitize({field: value})
    assert out.context == {}
    assert out.dropped_fields == [field]


def test_age_band_edges() -> None:
    bands = (18, 25, 35, 45, 55, 65)
    assert age_band(date(2008, 11, 23), TODAY, bands) == "18-24"
    assert age_band(date(2008, 11, 24), TODAY, bands) == "<18"
    assert age_band(date(1961, 11, 23), TODAY, bands) == "65+"
    with pytest.raises(ValueError, match="implausible"):
        age_band(date(1800, 1, 1), TODAY, bands)


def test_ip_prefix_lengths_are_configurable() -> None:
    assert ip_network_prefix("203.0.113.77", 16, 32) == "203.0.0.0/16"
    out = _sanitize({"ip": "2001:db8:1:2::1"}, PiiPolicy(ipv6_prefix=32))
    assert out.context == {"ip": "2001:db8::/32"}


def test_policy_file_merges_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(
        json.dumps(
            {"fields": {"Loyalty_Tier": "keep", "country": "drop"}, "coordinate_decimals": 0}
        )
    )
    policy = PiiPolicy.from_file(path)
    out = _sanitize(
        {"loyalty_tier": "gold", "country": "FR", "lat": "48.8566", "email": "a@b.co"}, policy
    )
    assert out.context == {"loyalty_tier": "gold", "lat": "49"}
    assert out.dropped_fields == ["country", "email"]
    path.write_text(json.dumps({"replace_defaults": True, "fields": {"page": "keep"}}))
    only_page = PiiPolicy.from_file(path)
    assert _sanitize({"page": "/a", "device": "tv"}, only_page).context == {"page": "/a"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": {"email": "hash"}}, "unknown PII rule"),
        ({"unknown": "generalize"}, "unknown must be"),
        ({"ipv4_prefix": 33}, "IP prefixes"),
        ({"age_bands": (30, 18)}, "age_bands"),
        ({"coordinate_decimals": 6}, "coordinate_decimals"),
    ],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PiiPolicy(**kwargs)  # type: ignore[arg-type]
