"""PrivacyGatewayService: validate -> domain -> response. Logs and spans carry counts, kinds
and privacy parameters only, never user references, pseudonyms or context values."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Protocol, TypeVar

import grpc
from opentelemetry import metrics, trace

from services.privacy_gateway.config import PrivacyGatewaySettings
from services.privacy_gateway.ledger import BudgetState, Ledger, utc_now
from services.privacy_gateway.mechanisms import (
    Mechanism,
    calibrate,
    release_counts,
    validate_privacy_parameters,
)
from services.privacy_gateway.pii import PiiSanitizer
from shared.deadline import Budget
from shared.errors import FailedPrecondition, InvalidArgument
from shared.event_window import EventWindow, window_from_proto, window_to_proto
from shared.gen.acme.recsys.v1 import (
    feature_store_pb2,
    privacy_gateway_pb2,
    privacy_gateway_pb2_grpc,
)
from shared.keyring import KeyRing
from shared.peer_auth import PrivilegedCallers

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE_NAME = "acme.recsys.v1.PrivacyGatewayService"
MAX_PURPOSE_LENGTH = 200

_KIND_NAMES = {
    feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY: "item_popularity",
    feature_store_pb2.AGGREGATE_KIND_CATEGORY_TREND: "category_trend",
}
_KIND_VALUES = {name: value for value, name in _KIND_NAMES.items()}
_MECHANISMS = {
    privacy_gateway_pb2.NOISE_MECHANISM_LAPLACE: Mechanism.LAPLACE,
    privacy_gateway_pb2.NOISE_MECHANISM_GAUSSIAN: Mechanism.GAUSSIAN,
}


class CountSource(Protocol):
    """What the gateway needs from the feature store (clients.FeatureStoreClient)."""

    async def contribution_bounded_counts(
        self,
        kind: feature_store_pb2.AggregateKind,
        max_contributions: int,
        budget: Budget,
        window: EventWindow | None = None,
    ) -> list[tuple[str, float]]: ...

    async def set_item_popularity(
        self, release_id: str, popularities: list[tuple[str, float]], budget: Budget
    ) -> int: ...


class PrivacyGatewayServicer(privacy_gateway_pb2_grpc.PrivacyGatewayServiceServicer):
    def __init__(
        self,
        settings: PrivacyGatewaySettings,
        keys: Callable[[], KeyRing],
        sanitizer: PiiSanitizer,
        ledger: Ledger,
        counts: CountSource,
        executor: Executor,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._keys = keys
        self._sanitizer = sanitizer
        self._ledger = ledger
        self._counts = counts
        self._executor = executor
        # A release spends the privacy budget and overwrites the popularity every cold-start
        # shopper sees: only the release job's certificate may ask for one.
        self._privileged = PrivilegedCallers(
            settings.privileged_callers,
            dev_allow_loopback=settings.dev_allow_loopback_privileged,
            denied_message="ReleaseAggregates is reserved for the DP release job",
            methods="ReleaseAggregates",
        )
        meter = metrics.get_meter("services.privacy_gateway")
        self._releases = meter.create_counter(
            "privacy_gateway.releases", unit="{release}", description="Releases, by outcome."
        )
        self._epsilon_spent = meter.create_counter(
            "privacy_gateway.epsilon_spent", description="Epsilon charged to the ledger."
        )

    async def _blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def Pseudonymize(
        self, request: privacy_gateway_pb2.PseudonymizeRequest, context: grpc.aio.ServicerContext
    ) -> privacy_gateway_pb2.PseudonymizeResponse:
        refs = list(request.user_refs)
        if not refs:
            raise InvalidArgument("user_refs must not be empty")
        if len(refs) > self._settings.max_refs_per_request:
            raise InvalidArgument(
                f"at most {self._settings.max_refs_per_request} user_refs per request"
            )
        for i, ref in enumerate(refs):
            if not ref.strip():
                raise InvalidArgument(f"user_refs[{i}] is empty")
            if len(ref) > self._settings.max_ref_length:
                raise InvalidArgument(
                    f"user_refs[{i}] is longer than {self._settings.max_ref_length} characters"
                )
        ring = self._keys()  # one ring for the whole batch, even if a reload swaps it
        pseudonyms = [ring.pseudonymize(ref) for ref in refs]
        span = trace.get_current_span()
        span.set_attribute("privacy.ref_count", len(refs))
        span.set_attribute("privacy.key_version", ring.active_version)
        return privacy_gateway_pb2.PseudonymizeResponse(
            pseudonyms=pseudonyms, key_version=ring.active_version
        )

    async def SanitizeContext(
        self,
        request: privacy_gateway_pb2.SanitizeContextRequest,
        context: grpc.aio.ServicerContext,
    ) -> privacy_gateway_pb2.SanitizeContextResponse:
        if len(request.context) > self._settings.max_context_fields:
            raise InvalidArgument(
                f"context has more than {self._settings.max_context_fields} fields"
            )
        result = self._sanitizer.sanitize(dict(request.context))
        span = trace.get_current_span()
        span.set_attribute("privacy.dropped_count", len(result.dropped_fields))
        span.set_attribute("privacy.generalized_count", len(result.generalized_fields))
        return privacy_gateway_pb2.SanitizeContextResponse(
            context=result.context,
            dropped_fields=result.dropped_fields,
            generalized_fields=result.generalized_fields,
        )

    def _validate_window(
        self, message: feature_store_pb2.EventWindow, *, present: bool
    ) -> EventWindow | None:
        window = window_from_proto(message, present=present)
        # A window that reaches past now would be charged as covering events not yet in the
        # log, and a later release of the same period would find its budget spent.
        if window is not None and window.end > self._clock():
            raise InvalidArgument("event_window.end_time must not be in the future")
        return window

    def _validate_release(
        self, request: privacy_gateway_pb2.ReleaseAggregatesRequest
    ) -> tuple[str, Mechanism, int, str, EventWindow | None]:
        kind = _KIND_NAMES.get(request.kind)
        if kind is None:
            raise InvalidArgument(
                "kind must be AGGREGATE_KIND_ITEM_POPULARITY or AGGREGATE_KIND_CATEGORY_TREND"
            )
        if request.mechanism == privacy_gateway_pb2.NOISE_MECHANISM_UNSPECIFIED:
            mechanism = Mechanism(self._settings.default_mechanism)
        elif request.mechanism in _MECHANISMS:
            mechanism = _MECHANISMS[request.mechanism]
        else:
            raise InvalidArgument("mechanism must be a NoiseMechanism value")
        default_bound = (
            self._settings.item_popularity_max_contributions
            if request.kind == feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY
            else self._settings.default_max_contributions
        )
        bound = request.max_contributions_per_user or default_bound
        if bound < 1:
            raise InvalidArgument("max_contributions_per_user must be 0 (default) or at least 1")
        if bound > self._settings.max_contributions_limit:
            raise InvalidArgument(
                "max_contributions_per_user must be at most "
                f"{self._settings.max_contributions_limit}"
            )
        purpose = request.purpose.strip()
        if not purpose:
            raise InvalidArgument("purpose must say what the release is for")
        if len(purpose) > MAX_PURPOSE_LENGTH:
            raise InvalidArgument(f"purpose must be at most {MAX_PURPOSE_LENGTH} characters")
        validate_privacy_parameters(mechanism, request.epsilon, request.delta, bound)
        window = self._validate_window(
            request.event_window, present=request.HasField("event_window")
        )
        return kind, mechanism, bound, purpose, window

    async def ReleaseAggregates(
        self,
        request: privacy_gateway_pb2.ReleaseAggregatesRequest,
        context: grpc.aio.ServicerContext,
    ) -> privacy_gateway_pb2.ReleaseAggregatesResponse:
        # Who asks comes first: a refused caller learns nothing, not even what it got wrong.
        self._privileged.require(context, "ReleaseAggregates")
        kind, mechanism, bound, purpose, window = self._validate_release(request)
        labels = {"kind": kind, "mechanism": mechanism.value}
        try:
            budget = Budget.from_context(context, 2 * self._settings.feature_store_timeout_s)
            return await self._release(request, kind, mechanism, bound, purpose, window, budget)
        except FailedPrecondition:
            self._releases.add(1, {**labels, "outcome": "refused"})
            raise

    async def _release(
        self,
        request: privacy_gateway_pb2.ReleaseAggregatesRequest,
        kind: str,
        mechanism: Mechanism,
        bound: int,
        purpose: str,
        window: EventWindow | None,
        budget: Budget,
    ) -> privacy_gateway_pb2.ReleaseAggregatesResponse:
        epsilon, delta = request.epsilon, request.delta
        # Refuse before reading any data when the release cannot fit the window's budget.
        await self._blocking(lambda: self._ledger.ensure_available(epsilon, delta, window))
        calibration = await self._blocking(lambda: calibrate(mechanism, epsilon, delta, bound))
        pairs = await self._counts.contribution_bounded_counts(request.kind, bound, budget, window)
        keys = [k for k, _ in pairs]
        exact = [_as_count(c) for _, c in pairs]
        # Charge before drawing noise: a release is never returned without its ledger entry.
        release, state = await self._blocking(
            lambda: self._ledger.charge(
                kind=kind,
                mechanism=mechanism.value,
                epsilon=epsilon,
                delta=delta,
                max_contributions=bound,
                purpose=purpose,
                window=window,
            )
        )
        labels = {"kind": kind, "mechanism": mechanism.value}
        self._releases.add(1, {**labels, "outcome": "released"})
        self._epsilon_spent.add(epsilon, labels)
        noisy = await self._blocking(lambda: release_counts(exact, calibration))
        released = [(k, float(v)) for k, v in zip(keys, noisy, strict=True)]
        if request.kind == feature_store_pb2.AGGREGATE_KIND_ITEM_POPULARITY:
            await self._counts.set_item_popularity(release.release_id, released, budget)
        span = trace.get_current_span()
        span.set_attributes(
            {
                "privacy.kind": kind,
                "privacy.mechanism": mechanism.value,
                "privacy.epsilon": epsilon,
                "privacy.delta": delta,
                "privacy.max_contributions": bound,
                "privacy.key_count": len(keys),
                "privacy.release_id": release.release_id,
                "privacy.windowed": window is not None,
            }
        )
        log.info(
            "aggregate released",
            extra={
                "kind": kind,
                "mechanism": mechanism.value,
                "epsilon": epsilon,
                "delta": delta,
                "noise_scale": calibration.scale,
                "key_count": len(keys),
                "release_id": release.release_id,
                "event_window": "every event" if window is None else str(window),
                "epsilon_remaining": state.epsilon_remaining,
            },
        )
        return privacy_gateway_pb2.ReleaseAggregatesResponse(
            release_id=release.release_id,
            counts=[feature_store_pb2.KeyCount(key=k, count=c) for k, c in released],
            epsilon_remaining=state.epsilon_remaining,
            delta_remaining=state.delta_remaining,
        )

    async def GetPrivacyBudget(
        self,
        request: privacy_gateway_pb2.GetPrivacyBudgetRequest,
        context: grpc.aio.ServicerContext,
    ) -> privacy_gateway_pb2.GetPrivacyBudgetResponse:
        # A future end is fine here: asking what tomorrow's release could still spend.
        window = window_from_proto(request.event_window, present=request.HasField("event_window"))
        state: BudgetState = await self._blocking(lambda: self._ledger.state(window))
        return privacy_gateway_pb2.GetPrivacyBudgetResponse(
            epsilon_total=state.epsilon_total,
            epsilon_spent=state.epsilon_spent,
            delta_total=state.delta_total,
            delta_spent=state.delta_spent,
            entries=[
                privacy_gateway_pb2.BudgetEntry(
                    release_id=e.release_id,
                    kind=_KIND_VALUES.get(e.kind, feature_store_pb2.AGGREGATE_KIND_UNSPECIFIED),
                    epsilon=e.epsilon,
                    delta=e.delta,
                    purpose=e.purpose,
                    released_at=e.released_at.isoformat(),
                    event_window=None if e.window is None else window_to_proto(e.window),
                )
                for e in state.entries
            ],
        )


def _as_count(value: float) -> int:
    """Counts from the feature store are whole and non-negative; anything else is a contract
    violation that must not be noised as if it were valid."""
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise RuntimeError("the feature store returned a count that is not a whole number >= 0")
    return int(value)
