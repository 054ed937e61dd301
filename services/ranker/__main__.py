"""``python -m services.ranker``: wiring only (settings from RECSYS_RANKER_*)."""

from __future__ import annotations

import os

from services.ranker.app import build_ranker
from services.ranker.config import RankerSettings
from shared.app import run_service


def main() -> None:
    # The tokenizer and model come from the artefact on disk, never from the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_service(build_ranker, RankerSettings, "ranker")


if __name__ == "__main__":
    main()
