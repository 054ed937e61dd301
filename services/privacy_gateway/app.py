"""The privacy gateway's composition root: ``build_privacy_gateway`` wires the servable service.

``__main__``, the tests and the in-process benchmark all build the gateway through it: key
ring, PII policy, budget ledger, feature-store client, servicer and gRPC server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from services.privacy_gateway.clients import FeatureStoreClient, feature_store_tls
from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.ledger import Ledger, create_ledger_engine
from services.privacy_gateway.pii import PiiPolicy, PiiSanitizer
from services.privacy_gateway.servicer import SERVICE_NAME, PrivacyGatewayServicer
from shared.app import ServiceApp
from shared.gen.acme.recsys.v1 import privacy_gateway_pb2_grpc
from shared.keyring import KeyRing, ReloadingKeyRing
from shared.server import GrpcServer

log = logging.getLogger("services.privacy_gateway")
LEDGER_RETRY_S = 2.0


def load_keys(settings: PrivacyGatewaySettings) -> Callable[[], KeyRing]:
    """The key ring from the inline JSON (development) or the key file (a mounted Secret)."""
    grace = timedelta(seconds=settings.key_grace_window_s)
    if settings.key_ring_json is not None:
        ring = KeyRing.from_json(settings.key_ring_json.get_secret_value(), grace_window=grace)
        return lambda: ring
    return ReloadingKeyRing(settings.key_file, grace_window=grace)


async def reload_keys_forever(
    keys: ReloadingKeyRing, interval_s: float, executor: ThreadPoolExecutor
) -> None:
    """Re-read the key file every ``interval_s``; a broken file keeps the current ring."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        try:
            if await loop.run_in_executor(executor, keys.reload):
                ring = keys()
                log.info(
                    "key ring reloaded",
                    extra={"active_version": ring.active_version, "versions": len(ring.versions)},
                )
        except (OSError, ValueError) as exc:
            log.warning(
                "key ring reload failed; keeping the current ring",
                extra={"error": type(exc).__name__},
            )


async def wait_for_ledger(ledger: Ledger, executor: ThreadPoolExecutor) -> None:
    """Create the ledger tables and read them, retrying until the database answers."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(executor, ledger.create_schema)
            await loop.run_in_executor(executor, ledger.ping)
            return
        except Exception as exc:
            log.warning("ledger database unreachable", extra={"error": type(exc).__name__})
            await asyncio.sleep(LEDGER_RETRY_S)


class PrivacyGatewayApp(ServiceApp[PrivacyGatewaySettings, PrivacyGatewayServicer]):
    """The gateway's server and servicer with the key ring, ledger, feature-store client and
    executor they use. Readiness turns SERVING once the ledger database answers."""

    def __init__(
        self,
        settings: PrivacyGatewaySettings,
        server: GrpcServer,
        servicer: PrivacyGatewayServicer,
        keys: Callable[[], KeyRing],
        ledger: Ledger,
        feature_store: FeatureStoreClient,
        executor: ThreadPoolExecutor,
    ) -> None:
        super().__init__(settings, server, servicer)
        self.keys = keys
        self.ledger = ledger
        self.feature_store = feature_store
        self.executor = executor
        self._background: list[asyncio.Task[None]] = []

    async def on_start(self) -> None:
        ring = self.keys()
        log.info(
            "key ring loaded",
            extra={"active_version": ring.active_version, "versions": len(ring.versions)},
        )
        if isinstance(self.keys, ReloadingKeyRing):
            self._background.append(
                asyncio.create_task(
                    reload_keys_forever(
                        self.keys, self.settings.key_reload_interval_s, self.executor
                    )
                )
            )
        self._background.append(asyncio.create_task(self._become_ready()))

    async def _become_ready(self) -> None:
        await wait_for_ledger(self.ledger, self.executor)
        await self.server.set_ready(True)
        log.info("ready")

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background.clear()
        await self.feature_store.close()
        self.ledger.close()
        self.executor.shutdown(wait=True)


def build_privacy_gateway(settings: PrivacyGatewaySettings) -> PrivacyGatewayApp:
    """The gateway on ``settings``. A missing or malformed key ring or PII policy raises here:
    without them nothing can be served. Call inside the event loop that will serve it."""
    keys = load_keys(settings)
    policy = PiiPolicy.from_file(settings.pii_policy_file) if settings.pii_policy_file else None
    sanitizer = PiiSanitizer(policy or PiiPolicy())
    executor = ThreadPoolExecutor(settings.executor_workers, thread_name_prefix="privacy")
    ledger = Ledger(
        create_ledger_engine(settings.database_url),
        epsilon_total=settings.epsilon_budget,
        delta_total=settings.delta_budget,
    )
    feature_store = FeatureStoreClient(
        settings.feature_store_address,
        max_timeout_s=settings.feature_store_timeout_s,
        tls=feature_store_tls(settings),
    )
    servicer = PrivacyGatewayServicer(settings, keys, sanitizer, ledger, feature_store, executor)
    server = GrpcServer(settings, [SERVICE_NAME])
    privacy_gateway_pb2_grpc.add_PrivacyGatewayServiceServicer_to_server(servicer, server.server)
    return PrivacyGatewayApp(settings, server, servicer, keys, ledger, feature_store, executor)
