"""RetrievalService: validate the request, run the domain code off the event loop, respond."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
import numpy as np
from opentelemetry import trace

from services.retrieval.config import RetrievalSettings
from services.retrieval.live import LiveCatalog, LiveCatalogError
from services.retrieval.retriever import (
    NotLoaded,
    Retrieval,
    Retriever,
    ServedIndex,
    UnknownItem,
    load_served,
    retrieve_for_history,
    retrieve_for_vector,
    retrieve_similar,
    with_live,
)
from services.retrieval.sources import Source, SourceHit
from shared.artefacts.retrieval import LATEST, ArtefactError, ArtefactNotFound, InvalidVersionName
from shared.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from shared.gen.acme.recsys.v1 import retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCE_TO_PROTO = {
    Source.TWO_TOWER: retrieval_pb2.CANDIDATE_SOURCE_TWO_TOWER,
    Source.COLLABORATIVE: retrieval_pb2.CANDIDATE_SOURCE_COLLABORATIVE,
    Source.HISTORY: retrieval_pb2.CANDIDATE_SOURCE_HISTORY,
}


def _add_candidate(
    response: retrieval_pb2.RetrieveCandidatesResponse | retrieval_pb2.GetSimilarItemsResponse,
    item: str,
    score: float,
    vec: np.ndarray | None,
    hits: Sequence[SourceHit],
) -> None:
    # Filled in place: 0.44 ms for 100 candidates with two sources each, against 0.98 ms
    # building each Candidate from keyword arguments and copying it into the response.
    entry = response.candidates.add(item_id=item, score=score)
    if vec is not None:
        entry.embedding.extend(vec.tolist())
    for h in hits:
        source = SOURCE_TO_PROTO[h.source]
        entry.sources.append(source)
        entry.source_scores.add(source=source, score=h.score, rank=h.rank)


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """Serves one index version at a time and hot-swaps versions on request."""

    def __init__(
        self,
        settings: RetrievalSettings,
        executor: Executor,
        on_ready: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        # Validated here: nonsense weights fail at start, not at the first request.
        self._weights = settings.source_weights()
        self._executor = executor
        self._on_ready = on_ready
        self._retriever = Retriever()
        # Items added and withdrawn since training, re-applied to every version loaded.
        self._live = LiveCatalog()
        # One load or catalog change at a time: two concurrent swaps would race to the
        # final reference, and a change must not be lost to a version swap.
        self._load_lock = asyncio.Lock()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _served(self) -> ServedIndex:
        try:
            return self._retriever.current()
        except NotLoaded as exc:
            raise Unavailable("the retrieval index is not loaded yet") from exc

    # ------------------------------------------------------------------ loading

    async def load(self, version: str) -> tuple[str, str]:
        """Load ``version`` ("" = LATEST) and swap it in; returns (previous, new) versions."""
        async with self._load_lock:
            try:
                served = await self._run(
                    load_served,
                    self._settings.artefact_root,
                    version,
                    self._settings.index_type,
                    self._settings.hnsw_params(),
                )
            except InvalidVersionName as exc:
                raise InvalidArgument(str(exc)) from exc
            except ArtefactNotFound as exc:
                raise NotFound(str(exc)) from exc
            except ArtefactError as exc:
                log.error("artefact rejected", extra={"index_version": version})
                raise FailedPrecondition(
                    f"index version {version or LATEST!r} is not a valid artefact"
                ) from exc
            try:
                served = await self._run(with_live, served, self._live)
            except LiveCatalogError as exc:
                # A version without a title tower cannot serve the added items: keep the
                # served version rather than drop them.
                raise FailedPrecondition(str(exc)) from exc
            previous = self._retriever.swap(served)
        if self._on_ready is not None:
            await self._on_ready(True)
        return previous, served.version

    async def poll_latest(self) -> bool:
        """Hot-swap to the version named in LATEST when it differs from the served one."""
        latest = Path(self._settings.artefact_root) / LATEST
        try:
            wanted = (await self._run(latest.read_text)).strip()
        except OSError:
            return False
        if not wanted or (self._retriever.loaded and wanted == self._served().version):
            return False
        await self.load(wanted)
        return True

    # ------------------------------------------------------------------ validation

    def _check_n(self, n: int) -> None:
        if n < 1:
            raise InvalidArgument(f"n must be at least 1, got {n}")
        if n > self._settings.max_n:
            raise InvalidArgument(f"n must be at most {self._settings.max_n}, got {n}")

    def _check_ids(self, field: str, ids: Sequence[str]) -> None:
        if len(ids) > self._settings.max_request_ids:
            raise InvalidArgument(
                f"{field} has {len(ids)} ids; at most {self._settings.max_request_ids} allowed"
            )

    @staticmethod
    def _check_vector(values: Sequence[float], dimension: int) -> np.ndarray:
        vector = np.asarray(values, dtype=np.float32)
        if vector.size != dimension:
            raise InvalidArgument(
                f"user_vector has {vector.size} values; the index dimension is {dimension}"
            )
        if not np.all(np.isfinite(vector)):
            raise InvalidArgument("user_vector has NaN or infinite values")
        if not np.any(vector):
            raise InvalidArgument("user_vector is all zeros")
        return vector

    # ------------------------------------------------------------------ RPCs

    async def RetrieveCandidates(
        self,
        request: retrieval_pb2.RetrieveCandidatesRequest,
        context: grpc.aio.ServicerContext,
    ) -> retrieval_pb2.RetrieveCandidatesResponse:
        query = request.WhichOneof("query")
        if query is None:
            raise InvalidArgument("query is required: set history or user_vector")
        self._check_n(request.n)
        self._check_ids("excluded_item_ids", request.excluded_item_ids)
        served = self._served()
        excluded = list(request.excluded_item_ids)
        result: Retrieval
        if query == "history":
            history = list(request.history.item_ids)
            self._check_ids("history.item_ids", history)
            result = await self._run(
                retrieve_for_history,
                served,
                history,
                request.n,
                excluded,
                request.include_embeddings,
                self._weights,
                self._settings.history_decay,
            )
        else:
            vector = self._check_vector(request.user_vector.values, served.index.dimension)
            result = await self._run(
                retrieve_for_vector, served, vector, request.n, excluded, request.include_embeddings
            )
        span = trace.get_current_span()
        span.set_attribute("recsys.retrieval.query", query)
        span.set_attribute("recsys.retrieval.n", request.n)
        span.set_attribute("recsys.retrieval.candidates", len(result.items))
        span.set_attribute("recsys.retrieval.cold_start", result.cold_start)
        span.set_attribute("recsys.index_version", result.version)
        for source in served.sources(self._weights):
            span.set_attribute(
                f"recsys.retrieval.from_{source.value}",
                sum(1 for hits in result.hits if any(h.source is source for h in hits)),
            )
        hits = result.hits or [()] * len(result.items)
        response = retrieval_pb2.RetrieveCandidatesResponse(
            index_version=result.version, cold_start=result.cold_start
        )
        for (item, score, vec), item_hits in zip(result.items, hits, strict=True):
            _add_candidate(response, item, score, vec, item_hits)
        return response

    async def GetItemEmbeddings(
        self,
        request: retrieval_pb2.GetItemEmbeddingsRequest,
        context: grpc.aio.ServicerContext,
    ) -> retrieval_pb2.GetItemEmbeddingsResponse:
        if not request.item_ids:
            raise InvalidArgument("item_ids must not be empty")
        self._check_ids("item_ids", request.item_ids)
        served = self._served()
        response = retrieval_pb2.GetItemEmbeddingsResponse(index_version=served.version)
        for item in request.item_ids:
            vector = served.vector(item)
            if vector is None:
                response.missing_item_ids.append(item)
            else:
                response.embeddings.append(
                    retrieval_pb2.ItemEmbedding(item_id=item, values=vector.tolist())
                )
        return response

    async def GetIndexInfo(
        self,
        request: retrieval_pb2.GetIndexInfoRequest,
        context: grpc.aio.ServicerContext,
    ) -> retrieval_pb2.GetIndexInfoResponse:
        served = self._served()
        return retrieval_pb2.GetIndexInfoResponse(
            index_version=served.version,
            index_type=served.kind,
            item_count=served.size,
            dimension=served.index.dimension,
            live_item_count=len(served.live.item_ids),
            removed_item_count=len(served.live.removed),
            sources=[SOURCE_TO_PROTO[s] for s in served.sources(self._weights)],
        )

    async def LoadIndexVersion(
        self,
        request: retrieval_pb2.LoadIndexVersionRequest,
        context: grpc.aio.ServicerContext,
    ) -> retrieval_pb2.LoadIndexVersionResponse:
        previous, current = await self.load(request.index_version)
        return retrieval_pb2.LoadIndexVersionResponse(
            previous_version=previous, index_version=current
        )

    async def GetSimilarItems(
        self,
        request: retrieval_pb2.GetSimilarItemsRequest,
        context: grpc.aio.ServicerContext,
    ) -> retrieval_pb2.GetSimilarItemsResponse:
        if not request.item_id:
            raise InvalidArgument("item_id is required")
        self._check_n(request.n)
        self._check_ids("excluded_item_ids", request.excluded_item_ids)
        served = self._served()
        try:
            result = await self._run(
                retrieve_similar,
                served,
                request.item_id,
                request.n,
                list(request.excluded_item_ids),
                request.include_embeddings,
            )
        except UnknownItem:
            raise NotFound("the retrieval index holds no such item") from None
        span = trace.get_current_span()
        span.set_attribute("recsys.retrieval.n", request.n)
        span.set_attribute("recsys.retrieval.candidates", len(result.items))
        span.set_attribute("recsys.index_version", result.version)
        response = retrieval_pb2.GetSimilarItemsResponse(index_version=result.version)
        for item, score, vec in result.items:
            _add_candidate(response, item, score, vec, ())
        return response

    async def UpsertItems(
        self,
        request: retrieval_pb2.UpsertItemsRequest,
        context: grpc.aio.ServicerContext,
    ) -> retrieval_pb2.UpsertItemsResponse:
        if not request.items:
            raise InvalidArgument("items must not be empty")
        self._check_ids("items", request.items)
        items = [(it.item_id, list(it.title_embedding)) for it in request.items]
        async with self._load_lock:
            served = self._served()
            catalog = LiveCatalog(dict(self._live.titles), set(self._live.removed))
            try:
                added, updated, restored = catalog.upsert(served.artefact, items)
            except LiveCatalogError as exc:
                raise InvalidArgument(str(exc)) from None
            new = sum(1 for i in catalog.titles if served.artefact.row(i) is None)
            if new > self._settings.max_live_items:
                raise FailedPrecondition(
                    f"{new} added items would exceed max_live_items "
                    f"({self._settings.max_live_items}): retrain to fold them in"
                )
            swapped = await self._run(partial(with_live, served, catalog, incremental=True))
            self._live = catalog
            self._retriever.swap(swapped)
        span = trace.get_current_span()
        span.set_attribute("recsys.retrieval.added", added)
        span.set_attribute("recsys.retrieval.live_items", len(swapped.live.item_ids))
        return retrieval_pb2.UpsertItemsResponse(
            added_count=added,
            updated_count=updated,
            restored_count=restored,
            index_version=swapped.version,
        )

    async def RemoveItems(
        self,
        request: retrieval_pb2.RemoveItemsRequest,
        context: grpc.aio.ServicerContext,
    ) -> retrieval_pb2.RemoveItemsResponse:
        if not request.item_ids:
            raise InvalidArgument("item_ids must not be empty")
        self._check_ids("item_ids", request.item_ids)
        async with self._load_lock:
            served = self._served()
            catalog = LiveCatalog(dict(self._live.titles), set(self._live.removed))
            try:
                removed = catalog.remove(served.artefact, list(request.item_ids))
            except LiveCatalogError as exc:
                raise InvalidArgument(str(exc)) from None
            # The added items' vectors and index are unchanged: only the withdrawn set moves.
            swapped = dataclasses.replace(
                served, live=dataclasses.replace(served.live, removed=frozenset(catalog.removed))
            )
            self._live = catalog
            self._retriever.swap(swapped)
        trace.get_current_span().set_attribute("recsys.retrieval.removed", removed)
        return retrieval_pb2.RemoveItemsResponse(
            removed_count=removed, index_version=swapped.version
        )
