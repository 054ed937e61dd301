"""A shop's own folder, written here by hand in the data format, through every command:
seed -> train retrieval -> train ranker (quick) -> evaluate -> serve."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from client import cli
from devstack.stack import Stack, latest_version, local_specs, prepare
from tests.integration.conftest import REPO, small_layout

pytestmark = pytest.mark.slow

NOUNS = ["mug", "teapot", "scarf", "kite", "candle", "wallet", "puzzle", "honey"]
SHOPS = {"mug": "home", "teapot": "home", "candle": "home", "scarf": "fashion"}


def _write_shop(folder: Path) -> list[str]:
    """80 items in two-level categories, 30 shoppers with a month of views and purchases;
    returns the shoppers' ids."""
    folder.mkdir()
    rng = random.Random(5)
    lines = ["item_id,title,category_path,price"]
    for i in range(80):
        noun = NOUNS[i % len(NOUNS)]
        lines.append(
            f"P{i:03d},{rng.choice(['red', 'blue', 'green'])} {noun} {i},"
            f"{SHOPS.get(noun, 'other')} > {noun},{1 + i % 9}.50"
        )
    (folder / "items.csv").write_text("\n".join(lines) + "\n")
    users = [f"shopper-{u:02d}" for u in range(30)]
    events = ["user_id,item_id,timestamp,type,quantity"]
    for u, user in enumerate(users):
        taste = [i for i in range(80) if i % len(NOUNS) in (u % 8, (u + 3) % 8)]
        for day in range(1, 29):
            item = rng.choice(taste)
            kind = "purchase" if rng.random() < 0.4 else "view"
            events.append(f"{user},P{item:03d},2024-03-{day:02d}T{8 + u % 10:02d}:00:00,{kind},1")
    (folder / "events.csv").write_text("\n".join(events) + "\n")
    return users


def test_a_hand_written_folder_runs_through_train_evaluate_and_serve(tmp_path: Path) -> None:
    folder = tmp_path / "myshop"
    users = _write_shop(folder)
    layout = small_layout(tmp_path / "var", ranker_backend="local")
    # Keys, retrieval training, the quick ranker and the seed, each a command with --data.
    prepare(layout, data=str(folder), progress=lambda _: None)
    retrieval = json.loads((latest_version(layout.retrieval_dir) / "meta.json").read_text())
    assert retrieval["dataset"] == "myshop"
    assert "catalog known at the cut" in retrieval["metrics"]["protocol"]

    out = tmp_path / "eval.json"
    result = subprocess.run(
        [
            sys.executable,
            "scripts/evaluate.py",
            "--data",
            str(folder),
            "--retrieval-dir",
            str(layout.retrieval_dir),
            "--ranker-dir",
            str(latest_version(layout.ranker_dir)),
            "--users",
            "5",
            "--candidates",
            "50",
            "--tradeoffs",
            "0.5",
            "--json",
            str(out),
            "--figure",
            str(tmp_path / "fig.png"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["info"]["dataset"] == "myshop"
    assert report["info"]["catalog"].startswith("catalog known at the cut")

    stack = Stack(local_specs(layout), layout.logs_dir, REPO, progress=lambda _: None)
    stack.start()
    try:
        asyncio.run(stack.wait_ready())
        request = cli.recommend_request(users[0], 5, method="dpp", tradeoff=0.5)
        response = asyncio.run(cli.recommend(layout.addr("orchestrator"), request, timeout_s=30))
    finally:
        stack.stop_all()
    assert len(response.items) == 5
    assert all(item.item_id.startswith("P") for item in response.items)
    # The shopper is known to the store, so the answer is personal, not the fallback.
    assert not response.degraded_stages
