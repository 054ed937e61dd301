"""``python -m services.feature_store``: wiring only."""

from __future__ import annotations

import asyncio

from services.feature_store.app import build_feature_store
from services.feature_store.config import FeatureStoreSettings
from shared.logging import configure_logging
from shared.server import run_until_signal
from shared.telemetry import setup_telemetry


async def serve(settings: FeatureStoreSettings) -> None:
    app = build_feature_store(settings)
    await app.start()
    await run_until_signal(app.server, on_shutdown=[app.close])


def main() -> None:
    # Every field has a default and the values come from RECSYS_FEATURE_STORE_* variables;
    # mypy cannot see pydantic's positional Field defaults.
    settings = FeatureStoreSettings()  # type: ignore[call-arg]
    configure_logging("feature-store", settings.log_level)
    telemetry = setup_telemetry("feature-store", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
