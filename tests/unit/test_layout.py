"""Import rules of the layout: services stand side by side, shared/ depends on no role package,
and scripts are entry points over installed packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLE_PACKAGES = ("services", "offline", "devstack", "ops", "client")


def _imports(path: Path) -> set[str]:
    """Every module name an ``import`` or ``from ... import`` of the file names, lazy ones too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "gen" not in p.relative_to(REPO).parts)


SERVICES = sorted(p.name for p in (REPO / "services").iterdir() if (p / "__init__.py").exists())


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service: str) -> None:
    others = {f"services.{s}" for s in SERVICES if s != service}
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in _python_files(REPO / "services" / service)
        for name in _imports(path)
        if any(name == o or name.startswith(o + ".") for o in others)
    }
    assert not offenders, sorted(offenders)


def test_services_never_import_the_offline_dev_or_ops_packages() -> None:
    banned = ("offline", "devstack", "ops", "client")
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in _python_files(REPO / "services")
        for name in _imports(path)
        if name.split(".")[0] in banned
    }
    assert not offenders, sorted(offenders)


def test_shared_depends_on_no_role_package() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in _python_files(REPO / "shared")
        for name in _imports(path)
        if name.split(".")[0] in ROLE_PACKAGES
    }
    assert not offenders, sorted(offenders)


def test_scripts_do_not_edit_the_import_path() -> None:
    edits = ("sys.path.insert", "sys.path.append", "noqa: E402")
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "scripts").glob("*.py"))
        if any(edit in path.read_text(encoding="utf-8") for edit in edits)
    ]
    assert not offenders


def test_the_rule_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from services.ranker import model\n    import ops.seed\n")
    assert {"services.ranker", "services.ranker.model", "ops.seed"} <= _imports(module)
