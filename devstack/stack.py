"""The local stack: every service as its own process on loopback, and their readiness.

``devstack.run`` (``scripts/run_stack.py``, the README's main command) and the integration
tests use this module, so the processes they start are started exactly the same way: ``python -m
services.<name>`` with ``RECSYS_<NAME>_*`` variables, which is also the container command in
deploy/k8s. Logs of each child go to ``<var>/logs/<service>.log``; spans to
``<var>/traces/<service>.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from client.ports import DEFAULT_BASE_PORT, DEFAULT_HOST, stack_ports
from devstack import triton_server
from services.orchestrator.config import OrchestratorSettings
from shared.data.datasets import BUILTIN
from shared.health import check_health, check_http

_ORCHESTRATOR = OrchestratorSettings.model_fields

SERVICES = ("privacy_gateway", "feature_store", "retrieval", "ranker", "reranker", "orchestrator")


@dataclass
class ServiceSpec:
    """How to start one child and how to tell it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str]
    grpc_target: str | None = None
    http_ready_url: str | None = None
    startup_timeout_s: float = 60.0


@dataclass
class ManagedProcess:
    """One child process; ``stop`` sends SIGTERM, waits, then SIGKILLs."""

    spec: ServiceSpec
    log_path: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.alive:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, **self.spec.env}
        self.proc = subprocess.Popen(
            self.spec.argv,
            cwd=self.cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: a Ctrl-C in the terminal reaches the launcher only, which
            # then stops the children in order instead of all of them dying at once.
            start_new_session=True,
        )

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Stop the child; returns its exit code (None when it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()
        return self._close()

    def kill(self) -> None:
        """SIGKILL the child's whole process group (Triton's wrapper has a child of its own),
        as when a node dies; no graceful shutdown."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def _reap(self) -> None:
        # A wrapper that exited may leave its own children (tritonserver) behind.
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def _close(self) -> int | None:
        if self.proc is None:
            return None
        code = self.proc.returncode
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


async def probe(spec: ServiceSpec) -> str:
    """SERVING when the child reports ready on gRPC health (or Triton's HTTP endpoint)."""
    if spec.http_ready_url is not None:
        return await asyncio.to_thread(check_http, spec.http_ready_url, 1.0)
    assert spec.grpc_target is not None
    return await check_health(spec.grpc_target, "", 1.0)


class Stack:
    """A set of managed children, started and stopped in dependency order."""

    def __init__(
        self,
        specs: Iterable[ServiceSpec],
        logs_dir: Path,
        cwd: Path,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.processes = {s.name: ManagedProcess(s, logs_dir / f"{s.name}.log", cwd) for s in specs}
        self._progress = progress

    def start(self, names: Iterable[str] | None = None) -> None:
        for name in names or list(self.processes):
            self._progress(f"  starting {name}")
            self.processes[name].start()

    async def wait_ready(self, names: Iterable[str] | None = None) -> None:
        """Poll until every named child is SERVING; raise with its log tail when it died or
        did not get ready within its start-up timeout."""
        pending = list(names or self.processes)
        deadline = {n: time.monotonic() + self.processes[n].spec.startup_timeout_s for n in pending}
        while pending:
            statuses = await asyncio.gather(*(probe(self.processes[n].spec) for n in pending))
            for name, status in zip(list(pending), statuses, strict=True):
                proc = self.processes[name]
                if status == "SERVING":
                    self._progress(f"  {name} is SERVING")
                    pending.remove(name)
                elif not proc.alive:
                    raise RuntimeError(f"{name} exited during start-up:\n{proc.tail()}")
                elif time.monotonic() > deadline[name]:
                    raise RuntimeError(f"{name} not ready ({status}) in time:\n{proc.tail()}")
            if pending:
                await asyncio.sleep(0.3)

    def stop(self, name: str, grace_s: float = 10.0) -> int | None:
        self._progress(f"  stopping {name}")
        return self.processes[name].stop(grace_s)

    def stop_all(self, grace_s: float = 10.0) -> dict[str, int | None]:
        """Stop in reverse start order: the orchestrator first, so no request is cut halfway."""
        codes = {}
        for name in reversed(list(self.processes)):
            if self.processes[name].alive:
                codes[name] = self.stop(name, grace_s)
        return codes


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def env_for(prefix: str, values: Mapping[str, object]) -> dict[str, str]:
    """``{"port": 1}`` with prefix ``RECSYS_RANKER_`` -> ``{"RECSYS_RANKER_PORT": "1"}``."""
    return {f"{prefix}{key.upper()}": str(value) for key, value in values.items()}


@dataclass
class Layout:
    """Where the local stack keeps its files and which loopback ports it uses.

    The defaults are the services' own (their settings classes' ports, Triton's 8000-8002,
    the orchestrator's candidate count and deadline); tests pass other ports so they never
    collide with a stack already running.
    """

    root: Path
    var: Path
    host: str = DEFAULT_HOST
    base_port: int = DEFAULT_BASE_PORT
    triton_http_port: int = triton_server.HTTP_PORT
    triton_grpc_port: int = triton_server.GRPC_PORT
    triton_metrics_port: int = triton_server.METRICS_PORT
    otlp_port: int = 4318
    ranker_backend: str = "triton"
    candidate_count: int = _ORCHESTRATOR["candidate_count"].default
    default_deadline_s: float = _ORCHESTRATOR["default_deadline_s"].default
    log_level: str = "INFO"
    # What the Triton CPU repository serves when the stack exports it (see
    # offline/ranker/cpu_precision.py); tests force fp32, the same arithmetic on every CPU
    # (a forced precision is still measured and recorded).
    cpu_precision: str = "auto"
    # The feature store's database: empty = the embedded SQLite file under ``var``; a
    # SQLAlchemy URL (e.g. PostgreSQL) is migrated and seeded on first start like the file.
    feature_store_url: str = ""

    @property
    def ports(self) -> dict[str, int]:
        return stack_ports(self.base_port)

    def addr(self, name: str) -> str:
        return f"{self.host}:{self.ports[name]}"

    @property
    def traces_dir(self) -> Path:
        return self.var / "traces"

    @property
    def logs_dir(self) -> Path:
        return self.var / "logs"

    @property
    def key_file(self) -> Path:
        return self.var / "keys" / "pseudonym-keys.json"

    @property
    def feature_store_db(self) -> Path:
        return self.var / "feature_store.sqlite"

    @property
    def feature_store_database_url(self) -> str:
        return self.feature_store_url or f"sqlite:///{self.feature_store_db}"

    @property
    def ledger_db(self) -> Path:
        return self.var / "privacy_ledger.sqlite"

    @property
    def retrieval_dir(self) -> Path:
        return self.var / "models" / "retrieval"

    @property
    def ranker_dir(self) -> Path:
        return self.var / "models" / "ranker"

    @property
    def ltr_dir(self) -> Path:
        return self.var / "models" / "ltr"

    def common_env(self, prefix: str) -> dict[str, str]:
        return env_for(
            prefix,
            {"host": self.host, "traces_dir": self.traces_dir, "log_level": self.log_level},
        )


def local_specs(layout: Layout) -> list[ServiceSpec]:
    """Every child of the local stack, in start order (dependencies first)."""
    sqlite = "sqlite:///"
    specs = [
        ServiceSpec(
            "privacy_gateway",
            python_module("services.privacy_gateway"),
            {
                **layout.common_env("RECSYS_PRIVACY_GATEWAY_"),
                **env_for(
                    "RECSYS_PRIVACY_GATEWAY_",
                    {
                        "port": layout.ports["privacy_gateway"],
                        "key_file": layout.key_file,
                        "database_url": f"{sqlite}{layout.ledger_db}",
                        "feature_store_address": layout.addr("feature_store"),
                        # The release client runs on loopback without a certificate; a
                        # cluster grants ReleaseAggregates to the release Job's certificate.
                        "dev_allow_loopback_privileged": True,
                    },
                ),
            },
            grpc_target=layout.addr("privacy_gateway"),
        ),
        ServiceSpec(
            "feature_store",
            python_module("services.feature_store"),
            {
                **layout.common_env("RECSYS_FEATURE_STORE_"),
                **env_for(
                    "RECSYS_FEATURE_STORE_",
                    {
                        "port": layout.ports["feature_store"],
                        "database_url": layout.feature_store_database_url,
                        # The local stack's probe may be quick; production keeps 5 s.
                        "readiness_interval_s": 1.0,
                        # Everything runs on loopback without certificates: the gateway's
                        # release needs the privileged methods (a cluster uses mTLS).
                        "dev_allow_loopback_privileged": True,
                    },
                ),
            },
            grpc_target=layout.addr("feature_store"),
        ),
        ServiceSpec(
            "retrieval",
            python_module("services.retrieval"),
            {
                **layout.common_env("RECSYS_RETRIEVAL_"),
                **env_for(
                    "RECSYS_RETRIEVAL_",
                    {"port": layout.ports["retrieval"], "artefact_root": layout.retrieval_dir},
                ),
            },
            grpc_target=layout.addr("retrieval"),
            startup_timeout_s=120.0,
        ),
    ]
    if layout.ranker_backend == "triton":
        specs += [
            # Triton exports spans only over OTLP; without a collector this sink writes them
            # next to the other span files, so a request's trace includes Triton.
            ServiceSpec(
                "otlp_sink",
                python_module(
                    "devstack.otlp_sink",
                    "--host",
                    layout.host,
                    "--port",
                    str(layout.otlp_port),
                    "--dir",
                    str(layout.traces_dir),
                ),
                {},
                http_ready_url=f"http://{layout.host}:{layout.otlp_port}/health",
            ),
            ServiceSpec(
                "triton",
                python_module(
                    "devstack.triton_traced",
                    "--model-dir",
                    str(layout.ranker_dir),
                    "--http-port",
                    str(layout.triton_http_port),
                    "--grpc-port",
                    str(layout.triton_grpc_port),
                    "--metrics-port",
                    str(layout.triton_metrics_port),
                    "--otlp-url",
                    f"{layout.host}:{layout.otlp_port}",
                    "--cpu-precision",
                    layout.cpu_precision,
                ),
                {},
                http_ready_url=f"http://{layout.host}:{layout.triton_http_port}/v2/health/ready",
                startup_timeout_s=180.0,
            ),
        ]
    specs += [
        ServiceSpec(
            "ranker",
            python_module("services.ranker"),
            {
                **layout.common_env("RECSYS_RANKER_"),
                **env_for(
                    "RECSYS_RANKER_",
                    {
                        "port": layout.ports["ranker"],
                        "backend": layout.ranker_backend,
                        "model_dir": layout.ranker_dir,
                        "ranking_model_dir": layout.ltr_dir,
                        "triton_url": f"{layout.host}:{layout.triton_grpc_port}",
                        # The orchestrator's budget decides; the ranker's own cap (2 s by
                        # default) is too tight for BERT on a busy 2-core CPU.
                        "request_timeout_s": layout.default_deadline_s,
                    },
                ),
            },
            grpc_target=layout.addr("ranker"),
            startup_timeout_s=180.0,
        ),
        ServiceSpec(
            "reranker",
            python_module("services.reranker"),
            {
                **layout.common_env("RECSYS_RERANKER_"),
                **env_for("RECSYS_RERANKER_", {"port": layout.ports["reranker"]}),
            },
            grpc_target=layout.addr("reranker"),
        ),
        ServiceSpec(
            "orchestrator",
            python_module("services.orchestrator"),
            {
                **layout.common_env("RECSYS_ORCHESTRATOR_"),
                **env_for(
                    "RECSYS_ORCHESTRATOR_",
                    {
                        "port": layout.ports["orchestrator"],
                        "privacy_gateway_addr": layout.addr("privacy_gateway"),
                        "feature_store_addr": layout.addr("feature_store"),
                        "retrieval_addr": layout.addr("retrieval"),
                        "ranker_addr": layout.addr("ranker"),
                        "reranker_addr": layout.addr("reranker"),
                        "candidate_count": layout.candidate_count,
                        "default_deadline_s": layout.default_deadline_s,
                        # A short refresh so the fallback list exists soon after seeding.
                        "popularity_refresh_s": 10.0,
                        # Absent until someone writes it: no experiments, and writing one
                        # starts them without a restart (docs/operations.md).
                        "experiments_file": layout.var / "experiments.json",
                    },
                ),
            },
            grpc_target=layout.addr("orchestrator"),
        ),
    ]
    return specs


# ---- preparation: artefacts and data the services need before they can serve --------------


@dataclass
class PrepStep:
    """One idempotent preparation command, skipped when its result already exists."""

    title: str
    argv: list[str]
    done: Callable[[], bool]
    log_name: str


class PrepError(RuntimeError):
    """A preparation command failed; the message carries the tail of its log."""


def latest_version(root: Path) -> Path:
    """``root/<version>`` named by ``root/LATEST`` (the artefact layout of both trainers)."""
    latest = root / "LATEST"
    return root / latest.read_text().strip() if latest.exists() else root


def _triton_cpu_models(ranker_dir: Path) -> list[Path]:
    folder = latest_version(ranker_dir) / triton_server.TRITON_DIR / "cpu"
    return sorted(config.parent for config in folder.glob("*/config.pbtxt"))


def _triton_cpu_repository_exists(ranker_dir: Path, precision: str = "auto") -> bool:
    """Whether the export step is done: a cpu repository exists, exported as ``precision``
    asks (``triton_server.exported_as_asked``)."""
    models = _triton_cpu_models(ranker_dir)
    return bool(models) and all(triton_server.exported_as_asked(m, precision) for m in models)


def served_cpu_precision(ranker_dir: Path) -> str | None:
    """The precision the Triton CPU repository of the ranker artefact under ``ranker_dir``
    serves, as its export recorded it; None before the export."""
    models = _triton_cpu_models(ranker_dir)
    return triton_server.exported_cpu_precision(models[0]) if models else None


def prepare_steps(layout: Layout, *, data: str = "synthetic") -> list[PrepStep]:
    """Key ring -> retrieval index -> ranker -> learned ranking model -> seeded feature store,
    all from ``data`` (a
    folder in the data format or a built-in name, as every command's ``--data``).

    Retrieval is trained before the ranker, whose hard negatives are retrieval candidates.
    With the Triton backend, the ranker's CPU model repository is exported (and its CPU
    precision measured) as a step of its own, so that Triton's start stays short.
    """
    steps = [
        PrepStep(
            "generating the pseudonymization key ring",
            python_module(
                "ops.keys",
                "generate",
                "--if-missing",
                "--file",
                str(layout.key_file),
            ),
            layout.key_file.exists,
            "prepare-keys.log",
        ),
        PrepStep(
            "training the retrieval embeddings and FAISS index",
            python_module(
                "offline.retrieval.publish",
                "--data",
                data,
                "--out",
                str(layout.retrieval_dir),
            ),
            (layout.retrieval_dir / "LATEST").exists,
            "prepare-retrieval.log",
        ),
        PrepStep(
            "fine-tuning the BERT ranker (--quick, CPU)",
            python_module(
                "offline.ranker.training",
                "--quick",
                "--no-progress",
                "--data",
                data,
                "--retrieval-dir",
                # The trainer reads one version folder, not the root with LATEST; prepare()
                # rebuilds each step when it runs, so this names the freshly trained one.
                str(latest_version(layout.retrieval_dir)),
                "--output",
                str(layout.ranker_dir),
            ),
            (layout.ranker_dir / "LATEST").exists,
            "prepare-ranker.log",
        ),
        PrepStep(
            # Without the cross-encoder score as a feature: scoring every training candidate
            # with BERT costs minutes on CPU, the rest takes seconds (docs/ranker.md).
            "training the learned ranking model (LightGBM, validation cut of the training period)",
            python_module(
                "offline.ranker.ltr",
                "--data",
                data,
                "--candidates",
                str(layout.candidate_count),
                "--output",
                str(layout.ltr_dir),
            ),
            (layout.ltr_dir / "LATEST").exists,
            "prepare-ltr.log",
        ),
    ]
    if layout.ranker_backend == "triton":
        steps.append(
            PrepStep(
                f"exporting the ranker's Triton CPU repository (precision {layout.cpu_precision})",
                python_module(
                    "devstack.triton_traced",
                    "--prepare-only",
                    "--model-dir",
                    str(layout.ranker_dir),
                    "--cpu-precision",
                    layout.cpu_precision,
                ),
                lambda: _triton_cpu_repository_exists(layout.ranker_dir, layout.cpu_precision),
                "prepare-triton.log",
            )
        )
    steps.append(
        PrepStep(
            "seeding the feature store (user ids pseudonymized with the gateway's key)",
            python_module(
                "ops.seed",
                "--data",
                data,
                "--database-url",
                layout.feature_store_database_url,
                "--pseudonym-key-file",
                str(layout.key_file),
            ),
            lambda: _feature_store_seeded(layout),
            "prepare-seed.log",
        )
    )
    return steps


def _feature_store_seeded(layout: Layout) -> bool:
    """The embedded file exists, or the external database holds shoppers already."""
    if not layout.feature_store_url:
        return layout.feature_store_db.exists()
    import sqlalchemy as sa

    engine = sa.create_engine(layout.feature_store_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("users"):
                return False
            return bool(conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM users)")).scalar())
    finally:
        engine.dispose()


def prepare(
    layout: Layout,
    *,
    data: str = "synthetic",
    progress: Callable[[str], None] = print,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run every preparation step whose result is missing; raise PrepError on a failure.

    ``layout.var/DATA`` records which data the folder was prepared from: models and a store
    built from other data are never reused.
    """
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    marker = layout.var / "DATA"
    source = data if data in BUILTIN and not Path(data).is_dir() else str(Path(data).resolve())
    if marker.exists() and marker.read_text().strip() != source:
        raise PrepError(
            f"{layout.var} was prepared from {marker.read_text().strip()}, not {source}; "
            "pass another --var (or delete that folder)"
        )
    marker.write_text(source + "\n")
    for i in range(len(prepare_steps(layout, data=source))):
        # Built anew for each step: a step's command may name what the previous one wrote.
        step = prepare_steps(layout, data=source)[i]
        if step.done():
            progress(f"{step.title}: already there")
            continue
        log = layout.logs_dir / step.log_name
        progress(f"{step.title} (log: {log})")
        started = time.monotonic()
        with log.open("ab") as out:
            code = subprocess.call(
                step.argv,
                cwd=layout.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise PrepError(f"{step.title} failed (exit {code}):\n{tail}")
        progress(f"  done in {time.monotonic() - started:.1f} s")


async def release_popularity(
    layout: Layout, *, epsilon: float = 1.0, progress: Callable[[str], None] = print
) -> str:
    """One DP release of item popularity, only when the store holds none yet (each release
    spends privacy budget); returns the release id in use."""
    from ops.release import request_release
    from shared.channels import create_channel
    from shared.gen.acme.recsys.v1 import feature_store_pb2, feature_store_pb2_grpc

    async with create_channel(layout.addr("feature_store")) as channel:
        store = feature_store_pb2_grpc.FeatureStoreServiceStub(channel)
        popular = await store.GetPopularItems(
            feature_store_pb2.GetPopularItemsRequest(limit=1), timeout=10
        )
    if popular.release_id:
        progress(f"DP popularity release present: {popular.release_id}")
        return popular.release_id
    progress(f"releasing item popularity with differential privacy (epsilon={epsilon})")
    release = await request_release(
        layout.addr("privacy_gateway"),
        kind="item_popularity",
        epsilon=epsilon,
        purpose="popularity fallback of the local stack",
    )
    progress(f"  release {release.release_id}; epsilon left {release.epsilon_remaining:.2f}")
    return release.release_id
