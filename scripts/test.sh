#!/usr/bin/env bash
# The README's test command. Installs what the tests need into .venv, makes sure the local
# PostgreSQL is running, then runs: proto drift check, ruff (lint + format), mypy, pytest.
# In CI (CI=true) PostgreSQL-backed tests may not skip: a missing server fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
echo "==> installing the project and its test dependencies"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

echo "==> PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
# The real datasets are read in place from ../shared/data beside the checkout, never copied. A
# clone of a local checkout made elsewhere (git clone /work/main /tmp/x) has nothing beside it:
# it reads them beside its origin. Tests that need them fail loudly when neither exists.
if [ -z "${RECSYS_DATA_DIR:-}" ] && [ ! -d ../shared/data ]; then
  origin=$(git remote get-url origin 2>/dev/null || true)
  if [ -n "$origin" ] && [ -d "$origin/../shared/data" ]; then
    RECSYS_DATA_DIR=$(cd "$origin/../shared/data" && pwd)
    export RECSYS_DATA_DIR
    echo "==> real datasets: $RECSYS_DATA_DIR (beside this clone's origin)"
  fi
fi
export RECSYS_TEST_POSTGRES_URL=${RECSYS_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
export RECSYS_REQUIRE_POSTGRES=${RECSYS_REQUIRE_POSTGRES:-${CI:-0}}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "==> generated code is up to date"
.venv/bin/python scripts/gen_protos.py --check
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
# pytest exits 5 when it collected no tests; set -e turns that into a failure.
.venv/bin/python -m pytest "$@"
