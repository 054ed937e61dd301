"""``python -m services.privacy_gateway``: wiring only (settings from RECSYS_PRIVACY_GATEWAY_*)."""

from __future__ import annotations

from services.privacy_gateway.app import build_privacy_gateway
from services.privacy_gateway.config import PrivacyGatewaySettings
from shared.app import run_service


def main() -> None:
    run_service(build_privacy_gateway, PrivacyGatewaySettings, "privacy-gateway")


if __name__ == "__main__":
    main()
