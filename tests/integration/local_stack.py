"""A small local stack as real processes, for tests that need one of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.stack import Layout, Stack, local_specs
from tests.integration.conftest import REPO, build_small_artefacts, small_layout


@contextmanager
def running_stack(var: Path, *, ranker_backend: str = "local") -> Iterator[tuple[Layout, Stack]]:
    """Build the small artefacts into ``var``, start every service, stop them all at exit."""
    layout = small_layout(var, ranker_backend=ranker_backend)
    build_small_artefacts(layout)
    stack = Stack(local_specs(layout), layout.logs_dir, REPO, progress=lambda _: None)
    stack.start()
    try:
        asyncio.run(stack.wait_ready())
        yield layout, stack
    finally:
        stack.stop_all()
