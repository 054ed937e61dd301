"""``python -m services.privacy_gateway``: wiring only."""

from __future__ import annotations

import asyncio

from services.privacy_gateway.app import build_privacy_gateway
from services.privacy_gateway.config import PrivacyGatewaySettings
from shared.app import serve
from shared.logging import configure_logging
from shared.telemetry import setup_telemetry


def main() -> None:
    # Every field has a default and the values come from RECSYS_PRIVACY_GATEWAY_* variables;
    # mypy cannot see pydantic's positional Field defaults.
    settings = PrivacyGatewaySettings()  # type: ignore[call-arg]
    configure_logging("privacy-gateway", settings.log_level)
    telemetry = setup_telemetry("privacy-gateway", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(build_privacy_gateway, settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
