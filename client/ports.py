"""The port table of the six services (a local stack, or `recsys health --all`), read from each
service's settings class.

A stack may be moved as a block (``base_port`` other than the orchestrator's default, e.g. in
tests next to a running stack); the services keep their offsets from the settings defaults.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings

from services.feature_store.config import FeatureStoreSettings
from services.orchestrator.config import OrchestratorSettings
from services.privacy_gateway.config import PrivacyGatewaySettings
from services.ranker.config import RankerSettings
from services.reranker.config import RerankerSettings
from services.retrieval.config import RetrievalSettings

SETTINGS: dict[str, type[BaseSettings]] = {
    "orchestrator": OrchestratorSettings,
    "privacy_gateway": PrivacyGatewaySettings,
    "feature_store": FeatureStoreSettings,
    "retrieval": RetrievalSettings,
    "ranker": RankerSettings,
    "reranker": RerankerSettings,
}
DEFAULT_HOST = "127.0.0.1"


def default_ports() -> dict[str, int]:
    """Each service's default gRPC port, orchestrator first."""
    return {name: int(cls.model_fields["port"].default) for name, cls in SETTINGS.items()}


DEFAULT_BASE_PORT = default_ports()["orchestrator"]


def stack_ports(base_port: int = DEFAULT_BASE_PORT) -> dict[str, int]:
    """The ports of a stack whose orchestrator listens on ``base_port``."""
    shift = base_port - DEFAULT_BASE_PORT
    return {name: port + shift for name, port in default_ports().items()}


def stack_addresses(base_port: int = DEFAULT_BASE_PORT, host: str = DEFAULT_HOST) -> dict[str, str]:
    """``host:port`` of every service of such a stack."""
    return {name: f"{host}:{port}" for name, port in stack_ports(base_port).items()}
