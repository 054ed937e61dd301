"""Defaults of the jobs, read from the settings classes of the services they work for.

Each option also honours the service's own environment variable, so a job in the service's
pod (or Kubernetes Job with the same ConfigMap) finds the same key ring and database.
"""

from __future__ import annotations

import os

from services.feature_store.config import FeatureStoreSettings
from services.privacy_gateway.config import PrivacyGatewaySettings


def key_file() -> str:
    """``$RECSYS_PRIVACY_GATEWAY_KEY_FILE`` or the gateway's default key ring path."""
    default = PrivacyGatewaySettings.model_fields["key_file"].default
    return os.environ.get("RECSYS_PRIVACY_GATEWAY_KEY_FILE", default)


def feature_store_database_url() -> str:
    """``$RECSYS_FEATURE_STORE_DATABASE_URL`` or the feature store's default database."""
    default = FeatureStoreSettings.model_fields["database_url"].default
    return os.environ.get("RECSYS_FEATURE_STORE_DATABASE_URL", default)


def privacy_gateway_address() -> str:
    """The gateway on loopback at its default port."""
    return f"127.0.0.1:{PrivacyGatewaySettings.model_fields['port'].default}"
