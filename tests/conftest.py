"""Fixtures shared by all test layers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.data.types import shared_data_dir

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _require_postgres() -> bool:
    return os.environ.get("RECSYS_REQUIRE_POSTGRES", "0").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the local PostgreSQL server. Skips only outside CI; in CI a missing server fails."""
    url = os.environ.get("RECSYS_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        if _require_postgres():
            pytest.fail(f"PostgreSQL required but unreachable at {url}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {url}")
    return url


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema per test, dropped afterwards; the URL selects it by search_path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'drop schema "{schema}" cascade'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against both backends: an SQLite file and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only real datasets (../shared/data or RECSYS_DATA_DIR); never copied."""
    path = shared_data_dir()
    if not path.exists():
        pytest.fail(f"real datasets not found at {path}; set RECSYS_DATA_DIR")
    return path
