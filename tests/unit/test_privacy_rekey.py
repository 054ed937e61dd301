"""The re-keying job against a real feature store database."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ops.rekey import main, rekey
from services.feature_store.store import Event, FeatureStore, Item
from shared.keyring import KeyRing, KeyRingError, save_key_ring

T = datetime.now(UTC) - timedelta(days=3)


def _event(event_id: str, user: str, item: str, hours: int) -> Event:
    return Event(event_id, user, item, "purchase", T + timedelta(hours=hours))


def test_rekey_moves_and_merges_users_without_storing_raw_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'fs.sqlite'}"
    store = FeatureStore.from_url(url)
    store.migrate()
    store.load_catalog([Item(i, f"item {i}", ("home",), 2.0) for i in ("a", "b", "c")])
    v1 = KeyRing.generate()
    store.ingest_events(
        [
            _event("1", v1.pseudonymize("alice"), "a", 0),
            _event("2", v1.pseudonymize("alice"), "b", 1),
            _event("3", v1.pseudonymize("bob"), "a", 2),
        ]
    )
    keys = tmp_path / "keys.json"
    v2 = v1.rotated()
    save_key_ring(v2, keys)
    # Bob came back after the rotation: he already has history under the new key.
    store.ingest_events([_event("4", v2.pseudonymize("bob"), "c", 30)])
    ids = tmp_path / "ids.txt"
    ids.write_text("alice\n\nbob\ncarol\nalice\n")

    assert main(["--keys", str(keys), "--ids", str(ids), "--database-url", url]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {
        "ids_read": 4,
        "mappings": 3,
        "renamed": 2,
        "to_version": "v2",
        "dry_run": False,
    }
    assert "alice" not in out
    alice_old = store.get_user_features(v1.pseudonymize("alice"), 10)
    alice_new = store.get_user_features(v2.pseudonymize("alice"), 10)
    assert not alice_old.known
    assert alice_new.known
    assert sorted(alice_new.recent_item_ids) == ["a", "b"]
    bob = store.get_user_features(v2.pseudonymize("bob"), 10)
    assert sorted(bob.recent_item_ids) == ["a", "c"]
    assert not store.get_user_features(v1.pseudonymize("bob"), 10).known

    # Running it again changes nothing: an interrupted job is simply rerun.
    assert main(["--keys", str(keys), "--ids", str(ids), "--database-url", url]) == 0
    assert json.loads(capsys.readouterr().out)["renamed"] == 0
    store.close()


def test_dry_run_reads_stdin_and_renames_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.json"
    save_key_ring(KeyRing.generate().rotated().rotated(), keys)
    assert main(["--keys", str(keys), "--dry-run"], stdin=io.StringIO("u1\nu2\n")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "ids_read": 2,
        "mappings": 4,
        "renamed": 0,
        "to_version": "v3",
        "dry_run": True,
    }
    assert (
        main(["--keys", str(keys), "--dry-run", "--from-version", "v2"], stdin=io.StringIO("u1\n"))
        == 0
    )
    assert json.loads(capsys.readouterr().out)["mappings"] == 1


def test_rekey_batches_one_version_at_a_time_and_rejects_unknown_versions(tmp_path: Path) -> None:
    ring = KeyRing.generate().rotated().rotated()
    calls: list[dict[str, str]] = []

    def record(mapping: Mapping[str, str]) -> int:
        calls.append(dict(mapping))
        return 0

    result = rekey(ring, [f"u{i}" for i in range(5)], record, batch_size=2)
    assert result.ids_read == 5
    assert result.mappings == 10
    assert len(calls) == 6
    for mapping in calls:
        assert len({k.split(".")[0] for k in mapping}) == 1
        assert all(v.startswith("v3.") for v in mapping.values())
    assert calls[0][ring.pseudonym_under("u0", "v1")] == ring.pseudonymize("u0")
    with pytest.raises(KeyRingError, match="unknown key version"):
        rekey(ring, ["u"], record, from_versions=["v9"])
    with pytest.raises(ValueError, match="batch_size"):
        rekey(ring, ["u"], record, batch_size=0)


def test_the_job_refuses_what_it_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.json"
    assert main(["--keys", str(keys), "--dry-run"], stdin=io.StringIO("u1\n")) == 2
    assert "not found" in capsys.readouterr().err
    save_key_ring(KeyRing.generate().rotated(), keys)
    unknown = ["--keys", str(keys), "--dry-run", "--from-version", "v9"]
    assert main(unknown, stdin=io.StringIO("u1\n")) == 2
    assert "unknown key version" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--keys", str(keys), "--ids", "-", "--dataset", "synthetic"])
