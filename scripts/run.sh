#!/usr/bin/env bash
# The README's main command: the whole recommender on this machine.
# Creates .venv and installs the project when needed, then starts every service as its own
# process on loopback (Triton included), seeds and trains what is missing, serves a few real
# requests, prints them with a trace tree, and keeps serving until Ctrl-C.
# Extra arguments go to scripts/run_stack.py (try --help; --demo-only exits after the demo).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import client.cli, pytriton" >/dev/null 2>&1; then
  echo "==> installing the project into .venv (first run only; a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # The stack trains (the offline extra) and serves the ranker on nvidia-pytriton's CPU
  # Triton server, which only the dev extra carries; dev includes offline, ranker and serving.
  .venv/bin/python -m pip install -q -e '.[dev]'
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python scripts/run_stack.py "$@"
