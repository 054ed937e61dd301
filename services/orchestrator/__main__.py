"""``python -m services.orchestrator``: wiring only."""

from __future__ import annotations

import asyncio

from services.orchestrator.app import build_orchestrator
from services.orchestrator.config import OrchestratorSettings
from shared.logging import configure_logging
from shared.server import run_until_signal
from shared.telemetry import setup_telemetry


async def serve(settings: OrchestratorSettings) -> None:
    app = build_orchestrator(settings)
    await app.start()
    await run_until_signal(app.server, on_shutdown=[app.release])


def main() -> None:
    # Every field has a default and the values come from RECSYS_ORCHESTRATOR_* variables;
    # mypy cannot see pydantic's positional Field defaults.
    settings = OrchestratorSettings()  # type: ignore[call-arg]
    configure_logging("orchestrator", settings.log_level)
    telemetry = setup_telemetry("orchestrator", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
