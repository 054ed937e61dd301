"""``python -m services.ranker``: wiring only (settings from RECSYS_RANKER_*)."""

from __future__ import annotations

import asyncio
import os

from services.ranker.app import build_ranker
from services.ranker.config import RankerSettings
from shared.app import serve
from shared.logging import configure_logging
from shared.telemetry import setup_telemetry


def main() -> None:
    # The tokenizer and model come from the artefact on disk, never from the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Every field has a default; mypy cannot see pydantic's positional Field defaults.
    settings = RankerSettings()  # type: ignore[call-arg]
    configure_logging("ranker", settings.log_level)
    telemetry = setup_telemetry("ranker", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(build_ranker, settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
