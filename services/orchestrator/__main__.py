"""``python -m services.orchestrator``: wiring only (settings from RECSYS_ORCHESTRATOR_*)."""

from __future__ import annotations

from services.orchestrator.app import build_orchestrator
from services.orchestrator.config import OrchestratorSettings
from shared.app import run_service


def main() -> None:
    run_service(build_orchestrator, OrchestratorSettings, "orchestrator")


if __name__ == "__main__":
    main()
