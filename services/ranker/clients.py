"""Outbound calls to NVIDIA Triton through tritonclient's asyncio gRPC client.

Each call carries the W3C trace context in its request headers (so Triton's own tracing joins
the request's trace) and the caller's remaining budget twice: as the gRPC deadline (the client
gives up and cancels the call) and as Triton's per-request timeout, so a request still queued
in the dynamic batcher when its time is up is rejected there instead of computed for nobody
(the generated config.pbtxt's queue policy allows the override). Failures
become domain errors the orchestrator can act on: Triton down or the model not loaded ->
Unavailable; out of time -> DeadlineExceeded.
"""

from __future__ import annotations

import numpy as np
from opentelemetry import propagate, trace
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from services.ranker.model import OUTPUT_NAME
from shared.deadline import Budget
from shared.errors import DeadlineExceeded, Unavailable

tracer = trace.get_tracer(__name__)

# Triton reports a model that is not loaded (or is unloading) with these codes.
_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "StatusCode.NOT_FOUND", "StatusCode.CANCELLED"}


def _status(exc: InferenceServerException) -> str:
    return str(exc.status() or "")


class TritonBackend:
    """Scores tokenised pairs on a Triton model over gRPC."""

    name = "triton"

    def __init__(
        self, url: str, model_name: str, *, probe_timeout_s: float = 1.0, ready_cap_s: float = 10.0
    ) -> None:
        self.url = url
        self.model_name = model_name
        self._probe_timeout_s = probe_timeout_s
        self._cap_s = ready_cap_s
        self._client: InferenceServerClient | None = None

    @property
    def client(self) -> InferenceServerClient:
        # Created lazily so the grpc.aio channel binds to the running event loop.
        if self._client is None:
            self._client = InferenceServerClient(self.url)
        return self._client

    async def score(self, arrays: dict[str, np.ndarray], budget: Budget) -> np.ndarray:
        timeout = budget.timeout_for(cap=self._cap_s)
        inputs = []
        for name, value in arrays.items():
            tensor = InferInput(name, list(value.shape), "INT64")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        batch = next(iter(arrays.values())).shape
        with tracer.start_as_current_span(
            "triton.infer",
            kind=trace.SpanKind.CLIENT,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": "inference.GRPCInferenceService",
                "rpc.method": "ModelInfer",
                "ranker.model": self.model_name,
                "ranker.batch_size": int(batch[0]),
                "ranker.sequence_length": int(batch[1]),
            },
        ) as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            try:
                result = await self.client.infer(
                    self.model_name,
                    inputs,
                    outputs=[InferRequestedOutput(OUTPUT_NAME)],
                    headers=headers,
                    timeout=max(1, int(timeout * 1_000_000)),
                    client_timeout=timeout,
                )
            except InferenceServerException as exc:
                status = _status(exc)
                span.set_attribute("rpc.grpc.status", status)
                span.set_status(trace.StatusCode.ERROR, status)
                if status == "StatusCode.DEADLINE_EXCEEDED":
                    raise DeadlineExceeded("the ranking model did not answer in time") from None
                if status in _UNAVAILABLE:
                    raise Unavailable("the ranking model server is unavailable") from None
                raise RuntimeError(f"Triton inference failed: {status}") from None
        logits = result.as_numpy(OUTPUT_NAME)
        if logits is None:
            raise RuntimeError("Triton response has no logits output")
        return np.asarray(logits, dtype=np.float32).reshape(-1)

    async def is_ready(self) -> bool:
        """True when Triton answers and reports the model ready."""
        try:
            return bool(
                await self.client.is_model_ready(
                    self.model_name, client_timeout=self._probe_timeout_s
                )
            )
        except InferenceServerException:
            return False

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
