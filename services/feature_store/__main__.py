"""``python -m services.feature_store``: wiring only (settings from RECSYS_FEATURE_STORE_*)."""

from __future__ import annotations

from services.feature_store.app import build_feature_store
from services.feature_store.config import FeatureStoreSettings
from shared.app import run_service


def main() -> None:
    run_service(build_feature_store, FeatureStoreSettings, "feature-store")


if __name__ == "__main__":
    main()
