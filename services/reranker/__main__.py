"""``python -m services.reranker``: wiring only (settings from RECSYS_RERANKER_*)."""

from __future__ import annotations

from services.reranker.app import build_reranker
from services.reranker.config import RerankerSettings
from shared.app import run_service


def main() -> None:
    run_service(build_reranker, RerankerSettings, "reranker")


if __name__ == "__main__":
    main()
