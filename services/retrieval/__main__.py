"""``python -m services.retrieval``: wiring only (settings from RECSYS_RETRIEVAL_*)."""

from __future__ import annotations

from services.retrieval.app import build_retrieval
from services.retrieval.config import RetrievalSettings
from shared.app import run_service


def main() -> None:
    run_service(build_retrieval, RetrievalSettings, "retrieval")


if __name__ == "__main__":
    main()
