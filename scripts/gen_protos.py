"""Regenerate the Python gRPC code for protos/ into shared/gen/.

Run: python scripts/gen_protos.py [--check]

Generated modules live in ONE place, shared/gen/acme/recsys/v1/, and their
imports are rewritten to be absolute under ``shared.gen`` so that the tree
needs no sys.path tricks. ``--check`` regenerates into a temporary folder and
exits 1 if the committed files differ (the drift test calls it too).
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
GEN_ROOT = ROOT / "shared" / "gen"
_IMPORT = re.compile(r"^(\s*)from acme\.recsys\.v1 import", re.MULTILINE)


def generate(out_root: Path) -> list[Path]:
    """Run protoc for every .proto under protos/ and return the written files."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    include = Path(grpc_tools.__file__).parent / "_proto"
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted(out_root.rglob("*.py*")):
        if path.suffix not in {".py", ".pyi"}:
            continue
        text = _IMPORT.sub(r"\1from shared.gen.acme.recsys.v1 import", path.read_text())
        path.write_text(text)
        written.append(path)
    for pkg in {p.parent for p in written} | {out_root / "acme", out_root / "acme" / "recsys"}:
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text("")
            written.append(init)
    return written


def drift(committed: Path) -> list[str]:
    """Names of generated files that differ between a fresh run and ``committed``."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        # shared/gen/__init__.py is ours, not protoc's: compare everything below it.
        old_files = {
            p.relative_to(committed)
            for p in (committed / "acme").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        changed = sorted(str(p) for p in fresh_files ^ old_files)
        changed += sorted(
            str(p)
            for p in fresh_files & old_files
            if not filecmp.cmp(fresh / p, committed / p, shallow=False)
        )
        return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if shared/gen is stale")
    ns = parser.parse_args()
    if ns.check:
        changed = drift(GEN_ROOT)
        if changed:
            print(
                "generated code is stale; run python scripts/gen_protos.py:", *changed, sep="\n  "
            )
            return 1
        print("generated code is up to date")
        return 0
    target = GEN_ROOT / "acme"
    if target.exists():
        shutil.rmtree(target)
    written = generate(GEN_ROOT)
    print(f"wrote {len(written)} files under {GEN_ROOT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
