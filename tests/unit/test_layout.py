"""Guards of the package layout: services stand side by side, shared/ depends on no role
package, scripts are entry points over installed packages, and the serving pods import without
the heavy libraries that only the ranker and offline work need."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
SERVICE_NAMES = sorted(
    p.name for p in SERVICES.iterdir() if p.is_dir() and (p / "__init__.py").exists()
)

# Packages above shared/: a service may use none but its own, shared/ none at all.
ROLE_PACKAGES = ("services", "offline", "devstack", "ops", "client", "benchmarks")

# What the serving extra leaves out: the ranker extra adds torch, transformers and tritonclient,
# the offline extra the rest.
NOT_IN_SERVING = (
    "torch",
    "transformers",
    "matplotlib",
    "pandas",
    "tritonclient",
    "onnx",
    "onnxruntime",
    # Offline ALS training only: the retrieval pod folds users in with numpy.
    "implicit",
)
# The pods that run the serving image (the serving target of deploy/docker/Dockerfile).
SERVING_PODS = ("feature_store", "orchestrator", "privacy_gateway", "reranker", "retrieval")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(source: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every module an import statement in ``source`` (the text of ``path``) names, at any
    depth (function-level and conditional imports included), with relative imports resolved
    against the package of ``path``."""
    tree = ast.parse(source, filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            if module == "services":
                # ``from services import b`` (or ``from .. import b``) names b by its alias.
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"


def _cross_service_imports(service: str) -> list[str]:
    found = []
    for path in sorted((SERVICES / service).rglob("*.py")):
        for lineno, module in _imported_modules(path.read_text(), path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) >= 2 and parts[1] in SERVICE_NAMES:
                if parts[1] == service:
                    continue
                found.append(f"{path.relative_to(REPO)}:{lineno} imports {module}")
    return sorted(set(found))


def test_every_service_package_is_found() -> None:
    assert {"feature_store", "orchestrator", "privacy_gateway", "ranker", "reranker"} <= set(
        SERVICE_NAMES
    ), SERVICE_NAMES
    assert "retrieval" in SERVICE_NAMES


def test_the_import_scan_sees_every_form() -> None:
    """The scan itself: absolute, from-package, function-level and relative imports."""
    source = textwrap.dedent(
        """
        import services.b.x
        from services.c import y
        from services import d
        def late():
            from services.e.z import w
        from ..f import g
        from .. import i
        from . import h
        """
    )
    modules = {m for _, m in _imported_modules(source, SERVICES / "a" / "m.py")}
    assert {"services.b.x", "services.c", "services.d", "services.e.z"} <= modules
    assert {"services.f", "services.i", "services.a"} <= modules


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_no_service_imports_another(service: str) -> None:
    """Services talk over gRPC only; what two of them share lives in shared/."""
    found = _cross_service_imports(service)
    assert not found, "\n".join(found)


def _imports_under(folder: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(folder.rglob("*.py")):
        if "gen" in path.relative_to(REPO).parts:
            continue
        for lineno, module in _imported_modules(path.read_text(encoding="utf-8"), path):
            yield f"{path.relative_to(REPO)}:{lineno}", module


def test_services_never_import_the_offline_dev_or_ops_packages() -> None:
    banned = set(ROLE_PACKAGES) - {"services"}
    offenders = sorted(
        f"{where} imports {module}"
        for where, module in _imports_under(SERVICES)
        if module.split(".")[0] in banned
    )
    assert not offenders, "\n".join(offenders)


def test_shared_depends_on_no_role_package() -> None:
    offenders = sorted(
        f"{where} imports {module}"
        for where, module in _imports_under(REPO / "shared")
        if module.split(".")[0] in ROLE_PACKAGES
    )
    assert not offenders, "\n".join(offenders)


def test_scripts_do_not_edit_the_import_path() -> None:
    edits = ("sys.path.insert", "sys.path.append", "noqa: E402")
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "scripts").glob("*.py"))
        if any(edit in path.read_text(encoding="utf-8") for edit in edits)
    ]
    assert not offenders


_IMPORT_WITHOUT = """
import importlib
import importlib.abc
import sys

BLOCKED = set(sys.argv[1].split(","))
preloaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
if preloaded:
    sys.exit(f"already imported at start-up: {preloaded}")


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the serving extra)")
        return None


sys.meta_path.insert(0, Refuse())
for module in sys.argv[2:]:
    importlib.import_module(module)
"""


@pytest.mark.parametrize("service", SERVING_PODS)
def test_serving_pod_imports_without_the_heavy_libraries(service: str) -> None:
    """The in-suite stand-in for importing in an environment with only the serving extra:
    the pod's entry point and composition root import with those libraries refused."""
    modules = [f"services.{service}.__main__", f"services.{service}.app"]
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT, ",".join(NOT_IN_SERVING), *modules],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


# What the base dependencies leave out: everything of the serving extra but the gRPC core.
NOT_IN_BASE = (
    *NOT_IN_SERVING,
    "numpy",
    "faiss",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "opendp",
    "grpc_reflection",
)


def test_the_cli_imports_with_the_base_dependencies_alone() -> None:
    """`recsys` (client.cli, with the port table it reads from the settings classes) needs
    none of the serving extra: a client machine installs the project without extras."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT, ",".join(NOT_IN_BASE), "client.cli"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_refusing_finder_refuses() -> None:
    """The check above can fail: the ranker pod (Triton client, torch) is refused."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT, ",".join(NOT_IN_SERVING), "services.ranker.app"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "not in the serving extra" in result.stderr
