"""The container images, checked from their Dockerfiles (no Docker engine runs here): pinned
bases, multi-stage builds whose final stage has no build tools, a non-root user that matches the
pods' securityContext, and commands that start the same modules the local stack starts.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.unit.test_k8s import K8S, SERVICES, by_name, pod_spec, render

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
APP = DOCKER / "Dockerfile"
ARTIFACTS = DOCKER / "artifacts.Dockerfile"
# An exact release tag (python:3.11.13-slim-bookworm, busybox:1.37.0-musl) or a digest.
PINNED = re.compile(r"^[\w.\-/]+(:\d+\.\d+\.\d+[\w.\-]*|@sha256:[0-9a-f]{64})$")
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "apt-get install", "pip install")


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [v for i, v in self.instructions if i == instruction]


def stages(path: Path) -> list[Stage]:
    parser = DockerfileParser(str(path))
    out: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            image, _, name = value.partition(" AS ")
            out.append(Stage(image.strip(), name.strip() or None))
        elif instruction != "COMMENT" and out:
            out[-1].instructions.append((instruction, value))
    return out


def _uid(user: str) -> int:
    return int(user.split(":")[0])


@pytest.mark.parametrize("path", [APP, ARTIFACTS], ids=lambda p: p.name)
def test_bases_are_pinned_and_builds_are_multi_stage(path: Path) -> None:
    built = stages(path)
    assert len(built) >= 2, "build tools stay in a stage of their own"
    for stage in built:
        assert PINNED.match(stage.image), stage.image
    final = built[-1]
    (user,) = final.values("USER")
    assert _uid(user) > 0
    for run in final.values("RUN"):
        assert not any(tool in run for tool in BUILD_TOOLS), run


def test_app_image_matches_the_pods_and_the_project() -> None:
    build, final = stages(APP)
    # The runtime user is the uid every service pod runs as.
    docs = render(K8S / "overlays" / "gpu")
    deployments = by_name(docs, "Deployment")
    (user,) = final.values("USER")
    for name in SERVICES:
        assert pod_spec(deployments[name])["securityContext"]["runAsUser"] == _uid(user)
    # The final stage copies the environment that the build stage made, nothing compiled there.
    assert any("--from=build /opt/venv /opt/venv" in c for c in final.values("COPY"))
    # torch comes from the CPU wheel index, at the version pyproject pins.
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (torch_pin,) = [p for p in pins if p.startswith("torch")]
    torch_runs = [r for r in build.values("RUN") if "torch" in r]
    assert any(torch_pin in r and "TORCH_INDEX_URL" in r for r in torch_runs), torch_runs
    (index,) = [a for a in build.values("ARG") if a.startswith("TORCH_INDEX_URL=")]
    assert index.endswith("/whl/cpu")
    env = " ".join(final.values("ENV"))
    assert "HF_HUB_OFFLINE=1" in env


def test_default_command_is_a_service_module_like_the_deployments() -> None:
    final = stages(APP)[-1]
    (cmd,) = final.values("CMD")
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-m"]
    module = argv[2]
    assert module in {f"services.{m}" for m, _ in SERVICES.values()}
    assert (REPO / module.replace(".", "/") / "__main__.py").exists()


def _ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("path", [APP, ARTIFACTS], ids=lambda p: p.name)
def test_every_copied_path_survives_the_dockerignore(path: Path) -> None:
    ignore = path.with_name(path.name + ".dockerignore")
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = 0
    for stage in stages(path):
        for value in stage.values("COPY"):
            parts = [p for p in value.split() if not p.startswith("--")]
            if value.startswith("--from"):
                continue
            for source in parts[:-1]:
                assert not _ignored(patterns, source.rstrip("/")), (path.name, source)
                copied += 1
    assert copied >= 2


def test_dockerignore_rule_really_excludes() -> None:
    patterns = ["*", "!services/", "**/__pycache__"]
    assert _ignored(patterns, ".venv")
    assert not _ignored(patterns, "services")
    assert not _ignored(patterns, "services/ranker/model.py")


def test_init_containers_copy_what_the_artifacts_image_holds() -> None:
    final = stages(ARTIFACTS)[-1]
    collect = stages(ARTIFACTS)[0]
    targets = {v.split()[-1].rstrip("/") for v in collect.values("COPY")}
    # Folders the collect stage makes itself (the Triton repository).
    targets |= set(re.findall(r"mkdir -p (/artifacts/[\w/]+)", " ".join(collect.values("RUN"))))
    assert any("/artifacts" in c for c in final.values("COPY"))
    docs = render(K8S / "overlays" / "gpu")
    sources = set()
    for workload in docs:
        if workload["kind"] != "Deployment":
            continue
        for init in pod_spec(workload).get("initContainers", []):
            assert init["image"].startswith("registry.example.com/acme/recsys-artifacts:")
            sources |= set(re.findall(r"/artifacts/[\w/]+", " ".join(init["command"])))
    assert sources
    assert {s.rstrip("/") for s in sources} <= targets


def test_installed_package_carries_every_runtime_file(tmp_path: Path) -> None:
    """The image runs the project as pip installed it (not from a checkout): every file under
    services/ and shared/ (migrations, templates, generated code) must be in the wheel."""
    source = tmp_path / "src"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("shared", "services"):
        shutil.copytree(REPO / package, source / package, ignore=skip)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        str(p.relative_to(source))
        for package in ("shared", "services")
        for p in (source / package).rglob("*")
        if p.is_file()
    }
    assert expected, "nothing to check"
    assert expected <= packed, sorted(expected - packed)
