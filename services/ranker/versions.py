"""``LATEST`` under a model root: the version the ranker serves (the cross-encoder's root and
the learned ranking model's root alike)."""

from __future__ import annotations

import re
from pathlib import Path

LATEST = "LATEST"
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def set_latest(root: Path | str, version: str, what: str = "model") -> None:
    """Point ``root/LATEST`` at an existing version, atomically (written last, so LATEST
    never names a half-written folder). ValueError for a bad name or a missing version."""
    root = Path(root)
    if not VERSION_NAME.match(version):
        raise ValueError(f"invalid {what} version {version!r}")
    if not (root / version / "meta.json").is_file():
        raise ValueError(f"no {what} version {version!r} under {root}")
    tmp = root / f"{LATEST}.tmp"
    tmp.write_text(version + "\n")
    tmp.replace(root / LATEST)
