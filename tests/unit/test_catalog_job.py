"""The live-catalog job's command line: the withdrawal verbs need only the base dependencies
(a client machine runs `recsys catalog unavailable ...`), and bad command lines are refused
with a message before any call is made."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ops.catalog import CatalogJobError, build_parser, run
from tests.unit.test_layout import _IMPORT_WITHOUT, NOT_IN_BASE, REPO


def test_the_job_imports_with_the_base_dependencies_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT, ",".join(NOT_IN_BASE), "ops.catalog"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["upsert"], "upsert needs --file or --item"),
        (["upsert", "--item", "X", "--title", "t"], "--item needs --title and --category"),
        (
            ["upsert", "--item", "X", "--item", "Y", "--title", "t", "--category", "a"],
            "upsert takes one --item",
        ),
    ],
)
async def test_an_incomplete_upsert_is_refused_before_any_call(
    argv: list[str], message: str
) -> None:
    args = build_parser().parse_args(["--retrieval", "127.0.0.1:1", *argv])

    def no_encoder() -> object:
        raise AssertionError("the encoder must not be loaded for a refused command")

    with pytest.raises(CatalogJobError, match=message):
        await run(args, embed_factory=no_encoder)  # type: ignore[arg-type]


def test_every_verb_names_its_items() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retire"])
    args = build_parser().parse_args(
        ["--retrieval", "a:1", "--retrieval", "b:2", "retire", "--item", "X", "--item", "Y"]
    )
    assert (args.retrieval, args.item) == (["a:1", "b:2"], ["X", "Y"])
