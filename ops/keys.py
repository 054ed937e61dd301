"""Key ring administration: ``python -m ops.keys generate|rotate|prune|show``.

``generate`` creates a ring with one fresh version (refusing to overwrite an existing file, so a
launcher can call it whenever the file is missing); ``rotate`` adds a new active version and
retires the old one, which keeps verifying for the grace window; ``prune`` removes versions whose
grace window has ended; ``show`` prints versions and times, never secrets. In Kubernetes, write
the result into the Secret (``kubectl create secret generic ... --from-file``) instead of a file.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from ops import defaults
from shared.keyring import KeyRing, load_key_ring, save_key_ring


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.keys")
    parser.add_argument("command", choices=["generate", "rotate", "prune", "show"])
    parser.add_argument(
        "--file",
        default=defaults.key_file(),
        help="key ring JSON file (default: $RECSYS_PRIVACY_GATEWAY_KEY_FILE or the gateway's)",
    )
    parser.add_argument(
        "--grace-days", type=float, default=7.0, help="how long retired versions verify"
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="generate: succeed without change when the file already exists",
    )
    args = parser.parse_args(argv)
    path = Path(args.file)
    grace = timedelta(days=args.grace_days)

    if args.command == "generate":
        if path.exists():
            if args.if_missing:
                print(f"{path} exists; left unchanged")
                return 0
            print(f"{path} exists; use rotate to add a version", file=sys.stderr)
            return 1
        ring = KeyRing.generate(grace_window=grace)
        save_key_ring(ring, path)
        print(f"generated {path} with active version {ring.active_version}")
        return 0

    if not path.exists():
        print(f"{path} does not exist; run generate first", file=sys.stderr)
        return 1
    ring = load_key_ring(path, grace_window=grace)
    if args.command == "rotate":
        ring = ring.rotated()
        save_key_ring(ring, path)
        print(f"rotated {path}: active version {ring.active_version}")
    elif args.command == "prune":
        before = len(ring.versions)
        ring = ring.pruned()
        save_key_ring(ring, path)
        print(f"pruned {before - len(ring.versions)} version(s) from {path}")
    else:
        for v in ring.versions:
            state = "active" if v.version == ring.active_version else "retired"
            verifies = "verifies" if ring.verifies(v.version) else "expired"
            retired = v.retired_at.isoformat() if v.retired_at else "-"
            created = v.created_at.isoformat()
            print(f"{v.version}\t{state}\t{verifies}\tcreated {created}\tretired {retired}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
