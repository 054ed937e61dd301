"""``python -m services.reranker``: wiring only."""

from __future__ import annotations

import asyncio

from services.reranker.app import build_reranker
from services.reranker.config import RerankerSettings
from shared.app import serve
from shared.logging import configure_logging
from shared.telemetry import setup_telemetry


def main() -> None:
    # Values come from RECSYS_RERANKER_* variables; mypy cannot see pydantic's Field defaults.
    settings = RerankerSettings()  # type: ignore[call-arg]
    configure_logging("reranker", settings.log_level)
    telemetry = setup_telemetry("reranker", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(build_reranker, settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
