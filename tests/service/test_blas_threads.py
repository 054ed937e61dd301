"""A started service caps its process's BLAS thread pools (numpy's OpenBLAS) at
``blas_threads``: per-request linear algebra is small, and a woken pool cost far more than the
work (docs/benchmarks.md, "BLAS thread pools")."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from services.reranker.app import build_reranker
from services.reranker.config import RerankerSettings


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


@pytest.fixture
def restore() -> Iterator[None]:
    original = threadpool_limits(limits=None)  # a handle on the limits as they are
    try:
        yield
    finally:
        original.restore_original_limits()


@pytest.mark.usefixtures("restore")
@pytest.mark.parametrize("threads", [1, 2])
async def test_start_caps_the_blas_pool_at_the_setting(threads: int) -> None:
    np.linalg.solve(np.eye(4), np.ones(4))  # numpy's BLAS is loaded
    assert _blas_threads(), "numpy links a BLAS that threadpoolctl sees"
    threadpool_limits(limits=3)
    settings = RerankerSettings(port=0, grace_period_s=0.1, blas_threads=threads)
    async with build_reranker(settings):
        assert _blas_threads() == {threads}


def test_one_thread_is_the_default() -> None:
    assert RerankerSettings().blas_threads == 1
