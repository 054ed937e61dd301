"""The container images, checked from their Dockerfiles (no Docker engine runs here): pinned
bases, multi-stage builds whose final stage has no build tools, a non-root user that matches the
pods' securityContext, and commands that start the same modules the local stack starts.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.unit.test_k8s import K8S, SERVICES, by_name, pod_spec, render

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
APP = DOCKER / "Dockerfile"
ARTIFACTS = DOCKER / "artifacts.Dockerfile"
# The app Dockerfile's targets, one per pyproject extra (dependency profile).
TARGETS = ("serving", "ranker", "offline")
# Deployment or container name -> the image profile it runs.
PROFILE = {
    **{name: "serving" for name in SERVICES if name != "ranker"},
    "ranker": "ranker",
    "seed": "offline",
    "release": "offline",
}
DEFAULT_MODULE = {
    "serving": "services.orchestrator",
    "ranker": "services.ranker",
    "offline": "ops.seed",
}
# What only the ranker and offline work need; never in the serving pods' environment.
HEAVY = {"torch", "transformers", "matplotlib", "pandas", "tritonclient", "onnx", "onnxruntime"}
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


def by_stage(path: Path) -> dict[str, Stage]:
    return {stage.name: stage for stage in stages(path) if stage.name}


def image_stages(path: Path) -> list[Stage]:
    """The stages that become images: the three targets of the app Dockerfile, the last stage
    of the artifacts one."""
    if path == APP:
        named = by_stage(APP)
        return [named[target] for target in TARGETS]
    return [stages(path)[-1]]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize("path", [APP, ARTIFACTS], ids=lambda p: p.name)
def test_bases_are_pinned_and_builds_are_multi_stage(path: Path) -> None:
    built = stages(path)
    assert len(built) >= 2, "build tools stay in a stage of their own"
    named = {stage.name for stage in built}
    for stage in built:
        # A stage built on an earlier one names it; every other base is pinned.
        assert stage.image in named or PINNED.match(stage.image), stage.image
    by_name_ = {stage.name: stage for stage in built}
    for final in image_stages(path):
        (user,) = final.values("USER")
        assert _uid(user) > 0
        # The image is its stage and the stages it is built FROM: none of them builds.
        lineage = [final]
        while lineage[-1].image in by_name_:
            lineage.append(by_name_[lineage[-1].image])
        for stage in lineage:
            assert not (stage.name or "").startswith(("deps-", "build")), stage.name
            for run in stage.values("RUN"):
                assert not any(tool in run for tool in BUILD_TOOLS), run


def test_app_images_match_the_pods_and_the_project() -> None:
    named = by_stage(APP)
    # The runtime user is the uid every service pod runs as.
    docs = render(K8S / "overlays" / "gpu")
    deployments = by_name(docs, "Deployment")
    for target in TARGETS:
        (user,) = named[target].values("USER")
        for name in SERVICES:
            assert pod_spec(deployments[name])["securityContext"]["runAsUser"] == _uid(user)
        # Each image copies the environment its build stage made, nothing compiled there.
        copies = named[target].values("COPY")
        assert any(f"--from=build-{target} /opt/venv /opt/venv" in c for c in copies), copies
        # ... and that environment holds its own extra.
        installs = " ".join(named[f"deps-{target}"].values("RUN"))
        assert f'pip install ".[{target}]"' in installs, installs
    # torch comes from the CPU wheel index, at the version the ranker extra pins, and only
    # into the ranker's environment and the one built on it.
    extras = _pyproject()["project"]["optional-dependencies"]
    (torch_pin,) = [p for p in extras["ranker"] if p.startswith("torch")]
    torch_runs = [r for r in named["deps-ranker"].values("RUN") if "torch" in r]
    assert any(torch_pin in r and "TORCH_INDEX_URL" in r for r in torch_runs), torch_runs
    (index,) = [a for a in named["deps-ranker"].values("ARG") if a.startswith("TORCH_INDEX_URL=")]
    assert index.endswith("/whl/cpu")
    for stage in ("deps-serving", "build-serving", "serving"):
        assert not any("torch" in r for r in named[stage].values("RUN")), stage
    for target in ("ranker", "offline"):
        assert "HF_HUB_OFFLINE=1" in " ".join(named[target].values("ENV")), target


def test_extras_build_on_each_other_and_serving_has_no_heavy_libraries() -> None:
    extras = _pyproject()["project"]["optional-dependencies"]
    chain = ["serving", "ranker", "offline", "dev"]
    for lower, upper in itertools.pairwise(chain):
        assert f"acme-recsys[{lower}]" in extras[upper], upper
    names = {re.split(r"[\[<>=! ]", p, maxsplit=1)[0] for p in extras["serving"]}
    assert not names & HEAVY, names & HEAVY
    base = {
        re.split(r"[\[<>=! ]", p, maxsplit=1)[0] for p in _pyproject()["project"]["dependencies"]
    }
    assert not base & HEAVY, base & HEAVY


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_each_pod_runs_the_image_of_its_profile(overlay: str) -> None:
    docs = render(K8S / "overlays" / overlay)
    seen = set()
    for workload in docs:
        if workload["kind"] not in {"Deployment", "Job", "CronJob"}:
            continue
        for c in pod_spec(workload)["containers"]:
            name = workload["metadata"]["name"]
            profile = PROFILE.get(name) or PROFILE.get(c["name"])
            if profile is None:
                continue
            repository = c["image"].rsplit(":", 1)[0]
            assert repository == f"registry.example.com/acme/recsys-{profile}", (name, c["image"])
            seen.add(name)
    assert set(SERVICES) | {"dp-release"} <= seen
    if overlay == "dev":
        assert "feature-store-seed" in seen


def test_pod_images_carry_only_the_serving_packages_and_offline_carries_every_package() -> None:
    named = by_stage(APP)

    def copied(stage: str) -> set[str]:
        return {
            v.split()[0].rstrip("/") for v in named[stage].values("COPY") if not v.startswith("--")
        } - {"pyproject.toml", "README.md"}

    assert copied("build-serving") == copied("build-ranker") == {"shared", "services"}
    packages = {
        p.rstrip("*") for p in _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= copied("build-offline"), packages - copied("build-offline")


def test_every_copied_source_exists() -> None:
    """A package moved or renamed without its COPY line fails here, not in a docker build.
    (The artifacts image copies trained models, which exist only after training.)"""
    missing = [
        (stage.name, source)
        for stage in stages(APP)
        for value in stage.values("COPY")
        if not value.startswith("--from")
        for source in [p for p in value.split() if not p.startswith("--")][:-1]
        if not (REPO / source).exists()
    ]
    assert not missing, missing


@pytest.mark.parametrize("target", TARGETS)
def test_default_commands_are_modules_of_the_repository(target: str) -> None:
    (cmd,) = by_stage(APP)[target].values("CMD")
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-m"]
    module = argv[2]
    assert module == DEFAULT_MODULE[target]
    path = REPO / module.replace(".", "/")
    assert (path / "__main__.py").exists() or path.with_suffix(".py").exists(), module


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
