"""The local stack on another feature-store database (``--feature-store-url``): the store
process and the seeding step get that URL, and the seeding is skipped only once the database
holds shoppers (SQLite file and PostgreSQL alike)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from devstack.stack import Layout, _feature_store_seeded, local_specs, prepare_steps
from services.feature_store.db import upgrade
from services.feature_store.schema import users
from tests.conftest import REPO


def test_the_store_and_its_seeding_use_the_url_given(db_url: str, tmp_path: Path) -> None:
    external = not db_url.startswith("sqlite")
    layout = Layout(REPO, tmp_path / "var", feature_store_url=db_url if external else "")
    url = layout.feature_store_database_url
    assert url == (db_url if external else f"sqlite:///{tmp_path / 'var' / 'feature_store.sqlite'}")
    store = next(s for s in local_specs(layout) if s.name == "feature_store")
    assert store.env["RECSYS_FEATURE_STORE_DATABASE_URL"] == url
    seed = next(s for s in prepare_steps(layout) if s.log_name == "prepare-seed.log")
    assert seed.argv[seed.argv.index("--database-url") + 1] == url

    assert not seed.done()  # nothing there yet: not even the tables
    (tmp_path / "var").mkdir()
    engine = sa.create_engine(url)
    try:
        upgrade(engine)
        # An empty schema is not a seeded store (the SQLite file is: it is only ever created
        # by the seeding step).
        assert seed.done() is (not external)
        with engine.begin() as conn:
            conn.execute(users.insert().values(user_id="u1", created_at=datetime.now(UTC)))
        assert seed.done()
        assert _feature_store_seeded(layout)
    finally:
        engine.dispose()
