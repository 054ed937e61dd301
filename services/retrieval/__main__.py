"""``python -m services.retrieval``: wiring only (settings from RECSYS_RETRIEVAL_*)."""

from __future__ import annotations

import asyncio

from services.retrieval.app import build_retrieval
from services.retrieval.config import RetrievalSettings
from shared.app import serve
from shared.logging import configure_logging
from shared.telemetry import setup_telemetry


def main() -> None:
    # Every field has a default; mypy cannot see pydantic's positional Field defaults.
    settings = RetrievalSettings()  # type: ignore[call-arg]
    configure_logging("retrieval", settings.log_level)
    telemetry = setup_telemetry("retrieval", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(build_retrieval, settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
