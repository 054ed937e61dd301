"""Keyed pseudonyms, the key ring file, rotation with a grace window, and the keys CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops import keys as keys_cli
from shared.keyring import (
    KeyRing,
    KeyRingError,
    KeyVersion,
    ReloadingKeyRing,
    load_key_ring,
    save_key_ring,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _ring(seed: int, clock: Clock | None = None) -> KeyRing:
    return KeyRing.generate(
        clock=clock or Clock(), token_bytes=lambda n: hashlib.sha256(bytes([seed])).digest()[:n]
    )


def test_pseudonyms_are_stable_and_versioned() -> None:
    ring = _ring(1)
    first = ring.pseudonym_under("customer-17850", "v1")
    assert ring.pseudonymize("customer-17850") == first
    assert ring.pseudonymize("customer-17850") == first
    version, _, digest = first.partition(".")
    assert version == "v1"
    assert len(digest) == 64
    assert int(digest, 16) >= 0
    assert ring.pseudonymize("customer-17851") != first


def test_pseudonyms_differ_across_keys_and_are_not_plain_hashes() -> None:
    a, b = _ring(1), _ring(2)
    ids = [str(17000 + i) for i in range(200)]
    for ref in ids:
        digest_a = a.pseudonymize(ref).split(".")[1]
        assert digest_a != hashlib.sha256(ref.encode()).hexdigest()
        assert digest_a != b.pseudonymize(ref).split(".")[1]
    # Unrelated keys give unrelated outputs: about half of the 256 bits differ on average.
    flips = [
        bin(
            int(a.pseudonymize(r).split(".")[1], 16) ^ int(b.pseudonymize(r).split(".")[1], 16)
        ).count("1")
        for r in ids
    ]
    assert 120 < sum(flips) / len(flips) < 136


def test_rotation_keeps_old_versions_verifying_during_the_grace_window_only() -> None:
    clock = Clock()
    ring = _ring(1, clock)
    old = ring.pseudonymize("u-1")
    clock.now = T0 + timedelta(days=30)
    rotated = ring.rotated(token_bytes=lambda n: b"\x07" * n)
    new = rotated.pseudonymize("u-1")
    assert rotated.active_version == "v2"
    assert new.startswith("v2.")
    assert new != old
    assert rotated.pseudonym_under("u-1", "v1") == old
    assert rotated.verify("u-1", old)
    assert rotated.verify("u-1", new)
    assert not rotated.verify("u-2", old)
    assert not rotated.verify("u-1", old[:-1] + ("0" if old[-1] != "0" else "1"))
    assert not rotated.verify("u-1", "v9." + old.split(".")[1])
    assert not rotated.verify("u-1", "not-a-pseudonym")
    clock.now = T0 + timedelta(days=30 + 7) - timedelta(seconds=1)
    assert rotated.verify("u-1", old)
    clock.now = T0 + timedelta(days=30 + 7)
    assert not rotated.verify("u-1", old)
    assert rotated.verify("u-1", new)
    pruned = rotated.pruned()
    assert [v.version for v in pruned.versions] == ["v2"]
    with pytest.raises(KeyRingError, match="unknown key version"):
        pruned.pseudonym_under("u-1", "v1")


def test_key_ring_round_trips_through_an_owner_only_file(tmp_path: Path) -> None:
    clock = Clock()
    ring = _ring(3, clock).rotated(token_bytes=lambda n: b"\x05" * n)
    path = tmp_path / "keys" / "ring.json"
    save_key_ring(ring, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key_ring(path, clock=clock)
    assert loaded.active_version == "v2"
    assert loaded.pseudonymize("x") == ring.pseudonymize("x")
    assert loaded.pseudonym_under("x", "v1") == ring.pseudonym_under("x", "v1")
    assert "secret=" not in repr(loaded.versions[0])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(active="v7"), "active key version is not in the ring"),
        (lambda d: d["versions"][0].update(secret="c2hvcnQ="), "shorter than 32 bytes"),
        (lambda d: d["versions"][0].update(secret="!!not base64!!"), "not valid base64"),
        (lambda d: d["versions"][0].update(version="V.1"), "lower-case letters or digits"),
        (lambda d: d["versions"][0].update(created_at="yesterday"), "ISO 8601"),
        (lambda d: d["versions"][0].update(created_at="2026-01-01T00:00:00"), "time zone"),
        (lambda d: d["versions"][0].update(retired_at=T0.isoformat()), "active key version is"),
        (lambda d: d["versions"].append(dict(d["versions"][0])), "unique"),
        (lambda d: d.pop("versions"), "not valid"),
    ],
)
def test_malformed_key_rings_are_rejected(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(_ring(4).to_json())
    mutate(document)
    with pytest.raises(KeyRingError, match=message):
        KeyRing.from_json(json.dumps(document))


def test_ring_invariants() -> None:
    v1 = KeyVersion("v1", b"a" * 32, T0)
    v2 = KeyVersion("v2", b"b" * 32, T0)
    with pytest.raises(KeyRingError, match="needs retired_at"):
        KeyRing([v1, v2], "v2")
    with pytest.raises(KeyRingError, match="share a secret"):
        KeyRing([KeyVersion("v1", b"a" * 32, T0, T0), KeyVersion("v2", b"a" * 32, T0)], "v2")
    with pytest.raises(KeyRingError, match="not valid"):
        KeyRing.from_json("{not json")


def test_keys_cli_generate_rotate_show_prune(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "var" / "keys" / "pseudonym-keys.json"
    assert keys_cli.main(["rotate", "--file", str(path)]) == 1
    assert keys_cli.main(["generate", "--file", str(path)]) == 0
    first = path.read_text()
    assert keys_cli.main(["generate", "--file", str(path)]) == 1
    assert keys_cli.main(["generate", "--if-missing", "--file", str(path)]) == 0
    assert path.read_text() == first
    assert keys_cli.main(["rotate", "--file", str(path)]) == 0
    ring = load_key_ring(path)
    assert ring.active_version == "v2"
    assert len(base64.b64decode(json.loads(path.read_text())["versions"][1]["secret"])) == 32
    capsys.readouterr()
    assert keys_cli.main(["show", "--file", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "v1\tretired\tverifies" in shown
    assert "v2\tactive\tverifies" in shown
    for v in json.loads(path.read_text())["versions"]:
        assert v["secret"] not in shown
    assert keys_cli.main(["prune", "--grace-days", "0", "--file", str(path)]) == 0
    assert [v.version for v in load_key_ring(path).versions] == ["v2"]


def test_reloading_key_ring_picks_up_a_rotated_file_and_survives_a_broken_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ring.json"
    save_key_ring(_ring(5), path)
    keys = ReloadingKeyRing(path)
    before = keys().pseudonymize("u-1")
    assert keys.reload() is False
    save_key_ring(keys().rotated(), path)
    assert keys.reload() is True
    assert keys().active_version == "v2"
    assert keys().verify("u-1", before)
    path.write_text('{"active": "v3", "versions": []}')
    with pytest.raises(KeyRingError):
        keys.reload()
    assert keys().active_version == "v2"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        keys.reload()
    assert keys().active_version == "v2"
