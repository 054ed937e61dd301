"""The local stack: every service as its own process on loopback, and their readiness.

``scripts/run_stack.py`` (the README's main command) and the integration tests use this
module, so the processes they start are started exactly the same way: ``python -m
services.<name>`` with ``RECSYS_<NAME>_*`` variables, which is also the container command in
deploy/k8s. Logs of each child go to ``<var>/logs/<service>.log``; spans to
``<var>/traces/<service>.jsonl``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shared.cli import check_health, check_triton

SERVICES = ("privacy_gateway", "feature_store", "retrieval", "ranker", "reranker", "orchestrator")


@dataclass
class ServiceSpec:
    """How to start one child and how to tell it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str]
    grpc_target: str | None = None
    http_ready: str | None = None
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
                self.proc.kill()
                self.proc.wait(5)
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
    if spec.http_ready is not None:
        return await asyncio.to_thread(check_triton, spec.http_ready, 1.0)
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
        self.processes = {
            s.name: ManagedProcess(s, logs_dir / f"{s.name}.log", cwd) for s in specs
        }
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
