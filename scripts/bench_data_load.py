"""Time the data-format loader on a generated folder of a million events.

    python scripts/bench_data_load.py [--events 1000000] [--items 20000] [--users 50000]
        [--format csv|csv.gz|parquet|parquet.gz] [--folder /tmp/recsys-1m-events]

Writes the folder (once; reused when it is there), then loads it with
shared.data.format.load_folder and prints the seconds of the load alone as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from shared.data.format import SUFFIXES, load_folder


def write(folder: Path, events: int, items: int, users: int, suffix: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    catalog = pd.DataFrame(
        {
            "item_id": [f"I{i:06d}" for i in range(items)],
            "title": [f"item number {i}" for i in range(items)],
            "category_path": [f"top{i % 7} > leaf{i % 97}" for i in range(items)],
            "price": np.round(rng.lognormal(2.0, 0.6, items), 2),
        }
    )
    seconds = 1_600_000_000 + np.sort(rng.uniform(0, 180 * 86400, events))
    log = pd.DataFrame(
        {
            "user_id": np.char.add("u", rng.integers(0, users, events).astype(str)),
            "item_id": np.char.add(
                "I", np.char.zfill(rng.integers(0, items, events).astype(str), 6)
            ),
            "timestamp": pd.to_datetime(seconds, unit="s").strftime("%Y-%m-%dT%H:%M:%S"),
            "type": rng.choice(["view", "add_to_cart", "purchase"], events, p=[0.7, 0.2, 0.1]),
            "quantity": rng.integers(1, 4, events),
        }
    )
    for stem, frame in (("items", catalog), ("events", log)):
        path = folder / f"{stem}{suffix}"
        if suffix.startswith(".csv"):
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path.with_suffix("") if suffix.endswith(".gz") else path)
            if suffix.endswith(".gz"):
                import gzip

                raw = path.with_suffix("")
                path.write_bytes(gzip.compress(raw.read_bytes()))
                raw.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--format", choices=[s.lstrip(".") for s in SUFFIXES], default="csv")
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    suffix = f".{args.format}"
    folder = args.folder or Path(f"/tmp/recsys-{args.events}-events-{args.format}")
    if not (folder / f"events{suffix}").exists():
        write(folder, args.events, args.items, args.users, suffix, args.seed)
    started = time.perf_counter()
    dataset, _ = load_folder(folder)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "folder": str(folder),
                "format": args.format,
                "events": len(dataset.interactions),
                "items": len(dataset.items),
                "load_seconds": round(seconds, 2),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
