"""The seed and re-key jobs (ops) with the privacy gateway's real key ring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from ops import rekey, seed
from services.feature_store.store import FeatureStore
from shared.data import synthetic
from shared.data.datasets import load_data
from shared.data.format import write_folder
from shared.keyring import KeyRing, load_key_ring, save_key_ring


@pytest.fixture
def small(tmp_path: Path) -> list[str]:
    """``--data`` naming a small synthetic shop written in the data format."""
    folder = write_folder(synthetic.generate(n_items=40, n_users=6, seed=3), tmp_path / "shop")
    return ["--data", str(folder)]


def _users(url: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        users = set(conn.scalars(sa.text("select user_id from users")))
    engine.dispose()
    return users


def test_seed_then_rekey_after_rotation(
    db_url: str, tmp_path: Path, small: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "keys.json"
    save_key_ring(KeyRing.generate(), key_file)
    args = [*small, "--database-url", db_url, "--pseudonym-key-file", str(key_file)]
    assert seed.main([*args, "--batch-size", "25"]) == 0
    report = json.loads(capsys.readouterr().out)
    dataset = synthetic.generate(n_items=40, n_users=6, seed=3)
    assert report["events_accepted"] == len(dataset.interactions)
    assert report["users"] == len(dataset.users())
    ring = load_key_ring(key_file)
    assert _users(db_url) == {ring.pseudonymize(u) for u in dataset.users()}
    assert all(u.startswith("v1.") for u in _users(db_url))
    # Seeding again stores nothing new.
    assert seed.main(args) == 0
    assert json.loads(capsys.readouterr().out)["events_duplicate"] == len(dataset.interactions)

    save_key_ring(ring.rotated(), key_file)
    assert rekey.main([*args, "--from-version", "v1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ids_read"] == report["mappings"] == len(dataset.users())
    assert report["renamed"] == len(dataset.users())
    rotated = load_key_ring(key_file)
    assert _users(db_url) == {rotated.pseudonymize(u) for u in dataset.users()}
    store = FeatureStore.from_url(db_url)
    any_user = rotated.pseudonymize(dataset.users()[0])
    assert store.get_user_features(any_user, 5).known
    store.close()
    # The active version has nothing to re-key from.
    assert rekey.main([*args, "--from-version", rotated.active_version]) == 2
    assert "active key version" in capsys.readouterr().err


def test_seed_without_a_key_ring_explains_how_to_make_one(
    tmp_path: Path, small: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.json"
    url = f"sqlite:///{tmp_path / 'fs.sqlite'}"
    assert seed.main([*small, "--database-url", url, "--pseudonym-key-file", str(missing)]) == 2
    assert "ops.keys generate" in capsys.readouterr().err
    assert not (tmp_path / "fs.sqlite").exists()
    code = rekey.main(
        [
            *small,
            "--database-url",
            url,
            "--pseudonym-key-file",
            str(missing),
            "--from-version",
            "v1",
        ]
    )
    assert code == 2


def test_load_data_knows_the_built_in_names(data_dir: Path) -> None:
    retail = load_data("online-retail")
    assert retail.name == "online-retail"
    assert retail.interactions
    with pytest.raises(FileNotFoundError, match="neither a folder nor a built-in name"):
        load_data("movielens")
