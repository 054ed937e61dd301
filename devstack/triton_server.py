"""Run the Triton server bundled with nvidia-pytriton on a ranker artefact, for local use and
tests: ``python -m devstack.triton_server --model-dir var/models/ranker/<v>``.

It writes (once) the CPU variant of the model repository next to the artefact, assembles a
backend directory with the python backend and the stub for this interpreter's version, sets
the environment the python backend needs and runs ``tritonserver`` in the foreground until
SIGTERM/SIGINT, which it forwards. The bundled binary has only the python backend, which is
why the CPU variant exists (see offline/ranker/export.py); a GPU Triton image serves the
``gpu`` variant of the same repository unchanged.

This module must stay importable without grpc, SQLAlchemy, FAISS or OpenTelemetry: the GPU
benchmark uses it on a machine that has none of them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

TRITON_DIR = "triton"
# What --cpu-precision takes (offline.ranker.cpu_precision.CHOICES, which imports torch).
CPU_PRECISION_CHOICES = (
    "auto",
    "fp32",
    "int8",
    "bf16",
    "openvino_fp32",
    "openvino_bf16",
    "openvino_int8",
)
# The export's record of what a cpu model folder serves (cpu_precision.METADATA_FILE).
CPU_PRECISION_FILE = "cpu_precision.json"
# Triton's own default ports; the ranker's default triton_url names GRPC_PORT.
HTTP_PORT = 8000
GRPC_PORT = 8001
METRICS_PORT = 8002


def _pytriton_package() -> Path:
    # Located, not imported: importing pytriton loads its client (gevent, HTTP stack), which
    # is not needed to run the server binary and is absent on lean GPU images.
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nvidia-pytriton is not installed; it bundles the Triton server")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def pytriton_dist() -> Path:
    """The folder of the bundled Triton distribution inside the pytriton package."""
    return _pytriton_package() / "tritonserver"


def pytriton_libs() -> Path:
    return _pytriton_package().parent / "nvidia_pytriton.libs"


def prepare_backend_dir(dest: Path) -> Path:
    """``dest/python`` with the bundled python backend and the stub for this Python version.

    pytriton ships one stub per Python minor version; the backend expects it next to
    ``libtriton_python.so``. Symlinks avoid copying the distribution.
    """
    dist = pytriton_dist()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise FileNotFoundError(f"pytriton has no python backend stub for Python {version}")
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": dist / "backends" / "python" / "libtriton_python.so",
        "triton_python_backend_utils.py": dist
        / "backends"
        / "python"
        / "triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    for name, target in links.items():
        link = python_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return dest


def server_env(base: dict[str, str] | None = None, ort_threads: int = 2) -> dict[str, str]:
    """Environment of the server process.

    LD_LIBRARY_PATH starts with this interpreter's LIBDIR so the python model worker loads the
    SAME libpython (otherwise models fail with "'_thread.RLock' object has no attribute
    '_recursion_count'"), then pytriton's bundled libraries. PYTHONPATH gives the worker this
    environment's site-packages (numpy, onnxruntime).
    """
    env = dict(os.environ if base is None else base)
    libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(pytriton_libs())]
    if env.get("LD_LIBRARY_PATH"):
        libdirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in libdirs if d)
    paths = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("RANKER_ORT_THREADS", str(ort_threads))
    return env


def ensure_repository(
    model_dir: Path,
    variant: str = "cpu",
    model_name: str | None = None,
    *,
    cpu_precision: str = "auto",
    eval_dataset: Any = None,
    eval_shoppers: int = 24,
) -> Path:
    """The ``variant`` model repository of an artefact, exporting it on first use.

    The ``cpu`` variant serves the precision measured fastest at equal ranking on this
    machine (``cpu_precision`` forces one; see offline/ranker/cpu_precision.py), which costs
    a minute or so on the first start; the choice is kept with the repository. A repository
    exported otherwise than asked (another forced precision, or forced where ``auto`` is
    asked) is exported again."""
    from offline.ranker.export import export_onnx, select_cpu_precision, write_model_repository
    from services.ranker.model import load_artefact, resolve_model_dir

    folder = resolve_model_dir(model_dir)
    repo = folder / TRITON_DIR / variant
    onnx_path = folder / TRITON_DIR / "model.onnx"
    artefact = None
    if not onnx_path.exists():
        artefact = load_artefact(folder)
        export_onnx(artefact.model, onnx_path)
    name = model_name
    if name is None:
        name = str(json.loads((folder / "meta.json").read_text()).get("model_name"))
    exported = (repo / name / "config.pbtxt").exists()
    if exported and variant == "cpu" and not exported_as_asked(repo / name, cpu_precision):
        serves = exported_cpu_precision(repo / name) or "an unrecorded precision"
        print(
            f"ranker repository {repo / name} serves {serves}, not exported at "
            f"--cpu-precision {cpu_precision}: exporting it again",
            file=sys.stderr,
        )
        exported = False
    if not exported:
        precision, report, model = "fp32", None, None
        if variant == "cpu":
            artefact = artefact or load_artefact(folder)
            report = select_cpu_precision(
                artefact, onnx_path, cpu_precision, dataset=eval_dataset, shoppers=eval_shoppers
            )
            precision, model = report["chosen"], artefact.model
        write_model_repository(
            onnx_path,
            repo,
            name,
            variant,
            precision=precision,
            model=model,
            precision_report=report,
        )
    return repo


def _precision_record(model_folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((model_folder / CPU_PRECISION_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def exported_cpu_precision(model_folder: Path) -> str | None:
    """The precision a cpu repository's model folder serves, as its export recorded it;
    None where nothing (readable) is recorded."""
    chosen = _precision_record(model_folder).get("chosen")
    return chosen if isinstance(chosen, str) else None


def exported_as_asked(model_folder: Path, cpu_precision: str) -> bool:
    """Whether a cpu model folder was exported as ``--cpu-precision cpu_precision`` asks:
    the forced precision, or for ``auto`` the one measured fastest at equal ranking (a
    forced export, or one with no readable record, is not that)."""
    record = _precision_record(model_folder)
    if cpu_precision == "auto":
        return record.get("mode") == "auto" and isinstance(record.get("chosen"), str)
    return record.get("chosen") == cpu_precision


def server_command(
    repo: Path,
    backend_dir: Path,
    *,
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    host: str = "127.0.0.1",
    log_verbose: int = 0,
) -> list[str]:
    return [
        str(pytriton_dist() / "bin" / "tritonserver"),
        f"--model-repository={repo}",
        f"--backend-directory={backend_dir}",
        f"--grpc-address={host}",
        f"--http-address={host}",
        f"--metrics-address={host}",
        f"--grpc-port={grpc_port}",
        f"--http-port={http_port}",
        f"--metrics-port={metrics_port}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--exit-on-error=true",
        "--strict-readiness=true",
        f"--log-verbose={log_verbose}",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TritonProcess:
    """A tritonserver child process on a model repository."""

    def __init__(
        self,
        repo: Path,
        *,
        grpc_port: int = GRPC_PORT,
        http_port: int = HTTP_PORT,
        metrics_port: int = METRICS_PORT,
        host: str = "127.0.0.1",
        work_dir: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.repo = repo
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.metrics_port = metrics_port
        self.host = host
        self.work_dir = work_dir or repo.parent / "_server"
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def _local_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def grpc_url(self) -> str:
        return f"{self._local_host}:{self.grpc_port}"

    def start(self) -> TritonProcess:
        backends = prepare_backend_dir(self.work_dir / "backends")
        cmd = server_command(
            self.repo,
            backends,
            grpc_port=self.grpc_port,
            http_port=self.http_port,
            metrics_port=self.metrics_port,
            host=self.host,
        )
        out = self.log_file.open("ab") if self.log_file else None
        self.proc = subprocess.Popen(cmd, env=server_env(), stdout=out, stderr=subprocess.STDOUT)
        return self

    def ready(self) -> bool:
        """Triton's own readiness: server up and every model loaded."""
        url = f"http://{self._local_host}:{self.http_port}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with code {self.proc.returncode}")
            if self.ready():
                return
            time.sleep(0.25)
        raise TimeoutError(f"tritonserver not ready after {timeout_s} s")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Triton drains and unloads), then SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """Abrupt death, as when a node goes away."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve a ranker artefact on the bundled Triton.")
    p.add_argument("--model-dir", default="var/models/ranker", help="Artefact or its root.")
    p.add_argument("--variant", choices=["cpu", "gpu"], default="cpu")
    p.add_argument(
        "--cpu-precision",
        choices=CPU_PRECISION_CHOICES,
        default="auto",
        help="What the cpu variant runs; auto: the fastest that ranks like fp32 on this "
        "machine (measured once). A repository exported otherwise is exported again.",
    )
    p.add_argument("--grpc-port", type=int, default=GRPC_PORT)
    p.add_argument("--http-port", type=int, default=HTTP_PORT)
    p.add_argument("--metrics-port", type=int, default=METRICS_PORT)
    p.add_argument("--host", default="127.0.0.1", help="Address to bind; 0.0.0.0 in containers.")
    return p.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    repo = ensure_repository(Path(args.model_dir), args.variant, cpu_precision=args.cpu_precision)
    server = TritonProcess(
        repo,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        host=args.host,
    ).start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    assert server.proc is not None
    return int(server.proc.wait())


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main(sys.argv[1:]))
