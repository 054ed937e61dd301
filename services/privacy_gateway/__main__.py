"""``python -m services.privacy_gateway``: wiring only."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from services.privacy_gateway.clients import FeatureStoreClient, feature_store_tls
from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.ledger import Ledger, create_ledger_engine
from services.privacy_gateway.pii import PiiPolicy, PiiSanitizer
from services.privacy_gateway.servicer import SERVICE_NAME, PrivacyGatewayServicer
from shared.gen.acme.recsys.v1 import privacy_gateway_pb2_grpc
from shared.keyring import KeyRing, ReloadingKeyRing
from shared.logging import configure_logging
from shared.server import GrpcServer, run_until_signal
from shared.telemetry import setup_telemetry

log = logging.getLogger(__name__)
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


async def wait_for_ledger(ledger: Ledger, loop_executor: ThreadPoolExecutor) -> None:
    """Create the ledger tables and read them, retrying until the database answers."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(loop_executor, ledger.create_schema)
            await loop.run_in_executor(loop_executor, ledger.ping)
            return
        except Exception as exc:
            log.warning("ledger database unreachable", extra={"error": type(exc).__name__})
            await asyncio.sleep(LEDGER_RETRY_S)


async def serve(settings: PrivacyGatewaySettings) -> None:
    # A missing or malformed key ring is fatal at start: without keys nothing can be served.
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
    server = GrpcServer(settings, [SERVICE_NAME])
    privacy_gateway_pb2_grpc.add_PrivacyGatewayServiceServicer_to_server(
        PrivacyGatewayServicer(settings, keys, sanitizer, ledger, feature_store, executor),
        server.server,
    )
    await server.start()
    log.info(
        "key ring loaded",
        extra={"active_version": keys().active_version, "versions": len(keys().versions)},
    )
    background = []
    if isinstance(keys, ReloadingKeyRing):
        background.append(
            asyncio.create_task(reload_keys_forever(keys, settings.key_reload_interval_s, executor))
        )

    async def become_ready() -> None:
        await wait_for_ledger(ledger, executor)
        await server.set_ready(True)
        log.info("ready")

    background.append(asyncio.create_task(become_ready()))

    async def stop_background() -> None:
        for task in background:
            task.cancel()

    async def close_ledger() -> None:
        ledger.close()
        executor.shutdown(wait=True)

    await run_until_signal(server, on_shutdown=[stop_background, feature_store.close, close_ledger])


def main() -> None:
    # Every field has a default and the values come from RECSYS_PRIVACY_GATEWAY_* variables;
    # mypy cannot see pydantic's positional Field defaults.
    settings = PrivacyGatewaySettings()  # type: ignore[call-arg]
    configure_logging("privacy-gateway", settings.log_level)
    telemetry = setup_telemetry("privacy-gateway", traces_dir=settings.traces_dir)
    try:
        asyncio.run(serve(settings))
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
