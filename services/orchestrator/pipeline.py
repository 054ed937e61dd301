"""The Recommend and LogEvents pipelines: fan-out, per-stage deadlines and fallbacks.

Recommend runs gateway -> user features -> retrieval -> item features (the candidates' and
the history's, in one lookup) -> ranker -> reranker. Only the privacy gateway is mandatory:
without a pseudonym nothing may proceed. Every other stage degrades instead of failing the request
(ranker -> retrieval order; reranker -> relevance order; feature store or retrieval ->
popularity list), and each fallback is recorded in the result, on the span and in a metric.
A shopper with no indexed item in the history (cold start) gets candidates from the DP
popularity release instead of retrieval, then the same ranker and reranker. No raw aggregate
of the event log reaches an answer: before the first DP release every popularity fallback is
the catalog in item-id order with scores 0, flagged ``popularity: no_dp_release``. Relevance is
the ranker's learned ranking model's when it has one (its top feature contributions go with
each item to the answer); otherwise the cross-encoder's score blended with the candidate's own
(services.orchestrator.blend, ``ranker_weight``).

The request context (page, device) is not used by any stage, so it is neither sent to the
gateway's SanitizeContext nor forwarded: the pipeline never sees it.

Written against the Backends protocol on domain values; no protobuf here. Spans and logs carry
counts, versions and reasons only, never user refs or pseudonyms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
from opentelemetry import metrics, trace

from services.orchestrator.blend import blend
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    AnswerPath,
    Candidate,
    IngestResult,
    ItemFeatures,
    Outcome,
    Reason,
    RecommendQuery,
    RerankCandidate,
    RerankMethod,
    RerankRequest,
    RetrievalResult,
    ShopperContext,
    ShopperEvent,
    SimilarQuery,
    Stage,
    StoredEvent,
    UserFeatures,
)
from services.orchestrator.downstream import Backends, DownstreamError
from services.orchestrator.experiments import NO_EXPERIMENTS, ExperimentsConfig, apply, assign
from services.orchestrator.popularity import PopularityCache
from services.orchestrator.reasons import ShopperSignals, explain
from services.orchestrator.switches import StageSwitches
from shared.deadline import Budget
from shared.errors import DeadlineExceeded, NotFound, ServiceError, Unavailable
from shared.filters import ItemFilter
from shared.selection import top_k_by_category

log = logging.getLogger(__name__)
T = TypeVar("T")

# Share of the budget still left that each stage may use. The cheap lookups get small shares
# so the BERT ranker, the slowest stage by far on CPU, keeps most of the time, and the
# reranker still has some left when the ranker used its whole share.
SHARE_GATEWAY = 0.15
SHARE_USER_FEATURES = 0.15
SHARE_RETRIEVAL = 0.25
SHARE_ITEM_FEATURES = 0.2
SHARE_RANKER = 0.7
SHARE_RERANKER = 0.8


class PipelineMetrics:
    """OpenTelemetry instruments of the orchestrator (the meter provider is global)."""

    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("services.orchestrator")
        self.requests = meter.create_counter(
            "recsys.orchestrator.requests", description="Recommend and LogEvents calls by outcome"
        )
        self.latency = meter.create_histogram(
            "recsys.orchestrator.duration", unit="s", description="End-to-end call latency"
        )
        self.fallbacks = meter.create_counter(
            "recsys.orchestrator.fallbacks", description="Degraded stages by stage and reason"
        )
        self.shed = meter.create_counter(
            "recsys.orchestrator.shed", description="Recommend calls refused by load shedding"
        )


def _reason(exc: BaseException) -> Reason:
    if isinstance(exc, DownstreamError):
        return exc.reason
    if isinstance(exc, DeadlineExceeded | asyncio.TimeoutError):
        return Reason.DEADLINE_EXCEEDED
    return Reason.ERROR


def top_by_relevance(
    candidates: Sequence[Candidate],
    k: int,
    max_per_category: int,
    taken: Sequence[Candidate] = (),
) -> list[Candidate]:
    """The k most relevant candidates, at most ``max_per_category`` per top-level category
    counting the ``taken`` items already on the page (shared.selection, as the reranker)."""
    picked = top_k_by_category(
        [c.relevance for c in candidates],
        [c.category for c in candidates],
        k,
        max_per_category,
        [c.category for c in taken],
    )
    return [candidates[i] for i in picked]


def shopper_context(
    user: UserFeatures, history: Sequence[ItemFeatures], now: datetime | None = None
) -> ShopperContext:
    """What the ranker knows of the shopper: the history's titles and top categories for the
    cross-encoder; affinities, the history's prices and the shopper's own interactions with
    the recent items for the learned ranking model (shared.ranking_features)."""
    return ShopperContext(
        recent_item_titles=tuple(f.title for f in history if f.title),
        recent_categories=user.top_categories,
        category_affinities=user.category_affinities,
        recent_item_prices=tuple(f.price for f in history),
        item_interactions=user.item_interactions,
        request_time=now,
    )


def _retrieved_candidates(retrieved: RetrievalResult) -> list[Candidate]:
    return [
        Candidate(
            item_id=c.item_id,
            retrieval_score=c.score,
            relevance=c.score,
            embedding=c.embedding,
            stages=[Stage.RETRIEVAL],
            retrieval_sources=c.source_scores,
        )
        for c in retrieved.candidates
    ]


def _popularity_candidates(items: Sequence[ItemFeatures], final: bool) -> list[Candidate]:
    """Candidates from a DP popularity list; ``final`` when no later stage scores them."""
    return [
        Candidate(
            item_id=f.item_id,
            relevance=f.dp_popularity,
            score=f.dp_popularity if final else 0.0,
            features=f,
            stages=[Stage.POPULARITY],
        )
        for f in items
    ]


def passes(item_filter: ItemFilter, cand: Candidate) -> bool:
    """``item_filter`` (shared.filters, the one predicate) on a candidate; one without
    features has unknown attributes and passes only an id filter."""
    f = cand.features
    return item_filter.accepts(
        cand.item_id, f.category_path if f is not None else None, f.price if f is not None else None
    )


def catalog_order(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The no-release fallback: the candidates in item-id order (a public attribute of the
    catalog) with every score 0, whatever order and scores they came with.

    Used wherever no DP popularity release exists yet. Retrieval's cold-start list already
    follows item ids; sorting again here means no raw aggregate (retrieval's training counts,
    an un-released count) can order or score a served list even if a source regresses.
    """
    out = sorted(candidates, key=lambda c: c.item_id)
    for cand in out:
        cand.relevance = cand.score = cand.retrieval_score = 0.0
    return out


class Pipeline:
    """Runs one request at a time through the stages; shared by all requests. Its knobs
    (history length, ranker weight) are read from the settings; the stage switches (ranker
    on/off, default reranker method, candidate count) from ``switches`` on every request when
    given (services.orchestrator.switches, reported in the answer's versions), else from the
    settings."""

    def __init__(
        self,
        backends: Backends,
        popularity: PopularityCache,
        settings: OrchestratorSettings,
        *,
        metrics_: PipelineMetrics | None = None,
        tracer: trace.Tracer | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        switches: Callable[[], StageSwitches] | None = None,
        experiments: Callable[[], ExperimentsConfig] | None = None,
    ) -> None:
        self._b = backends
        self._popularity = popularity
        fixed = StageSwitches.from_settings(settings)
        self._switches = switches or (lambda: fixed)
        self._report_switches = switches is not None
        self._experiments = experiments or (lambda: NO_EXPERIMENTS)
        self._recent = settings.recent_items
        self._overfetch = settings.filter_overfetch
        self._max_rounds = settings.filter_max_rounds
        self._retrieval_max_n = settings.retrieval_max_n
        self._ranker_weight = settings.ranker_weight
        self._contributions_per_item = settings.contributions_per_item
        self.metrics = metrics_ or PipelineMetrics()
        self._tracer = tracer or trace.get_tracer("services.orchestrator")
        self._now = now

    # ---- helpers -------------------------------------------------------------------------

    def _degrade(self, outcome: Outcome, stage: Stage, reason: Reason, fallback: str) -> None:
        """Flag ``stage`` in the answer, on the current and the request span, and in metrics."""
        outcome.degrade(stage, reason)
        attrs = {
            "recsys.stage": stage.value,
            "recsys.reason": reason.value,
            "recsys.fallback": fallback,
        }
        span = trace.get_current_span()
        span.add_event("degraded", attrs)
        span.set_attribute("recsys.degraded", True)
        span.set_attribute("recsys.fallback.reason", reason.value)
        self.metrics.fallbacks.add(1, {"stage": stage.value, "reason": reason.value})
        log.warning(
            "stage degraded",
            extra={"stage": stage.value, "reason": reason.value, "fallback": fallback},
        )

    async def _timed(
        self, budget: Budget, share: float, call: Callable[[float], Awaitable[T]]
    ) -> T:
        # timeout_for raises DeadlineExceeded when nothing is left, so no call is started
        # that could not finish in time.
        return await call(budget.timeout_for(share))

    # ---- Recommend -----------------------------------------------------------------------

    async def recommend(self, query: RecommendQuery, budget: Budget) -> Outcome:
        outcome = Outcome()
        request_span = trace.get_current_span()
        request_span.set_attribute("recsys.k", query.k)
        request_span.set_attribute("recsys.recommendation_id", outcome.recommendation_id)
        switches = self._switches()
        pseudonym = await self._pseudonymize(query, budget, outcome)
        query, switches = self._assign(pseudonym, query, switches, outcome, request_span)
        if self._report_switches:
            outcome.versions["stage_switches"] = switches.label
        if query.method is RerankMethod.UNSPECIFIED:
            query = dataclasses.replace(query, method=switches.default_reranker_method)
        n = switches.candidate_count
        f = query.filters
        if f.active:
            request_span.set_attribute("recsys.filter.attributes", f.needs_attributes)
        # Every id no answer may hold: the request's, the filter's, earlier pages'.
        excluded = list(
            dict.fromkeys(
                [*query.excluded_item_ids, *sorted(f.excluded_item_ids), *query.shown_item_ids]
            )
        )

        with self._tracer.start_as_current_span("orchestrator.user_features") as span:
            try:
                user = await self._timed(
                    budget,
                    SHARE_USER_FEATURES,
                    lambda t: self._b.user_features(pseudonym, self._recent, t),
                )
            except ServiceError as exc:
                self._degrade(outcome, Stage.FEATURE_STORE, _reason(exc), "popularity")
                path = await self._popularity_answer(query, budget, outcome, excluded)
                self._explain(outcome, path, query.k, None, [])
                return self._finish(request_span, outcome, f, excluded)
            span.set_attribute("recsys.known_user", user.known_user)
            span.set_attribute("recsys.recent_items", len(user.recent_item_ids))

        if query.exclude_purchased:
            already = set(excluded)
            excluded += [i for i in user.purchased_item_ids if i not in already]
        # One predicate for the filter and every exclusion, applied after each lookup.
        query = dataclasses.replace(
            query, filters=dataclasses.replace(f, excluded_item_ids=frozenset(excluded))
        )
        # A category or price filter is checked on the item features the pipeline fetches
        # after retrieval (the artefact holds no attributes), so retrieval is asked for more
        # candidates, and again for the rest when the filter removed most of them.
        n_fetch = min(self._retrieval_max_n, n * self._overfetch) if f.needs_attributes else n
        retrieved = await self._retrieve(user.recent_item_ids, excluded, n_fetch, budget, outcome)
        if retrieved is None:
            path = await self._popularity_answer(query, budget, outcome, excluded)
            self._explain(outcome, path, query.k, user, [])
            return self._finish(request_span, outcome, f, excluded)
        if not retrieved.candidates:
            # Nothing left after the exclusions (or an empty index): popular items beat an
            # empty page, and no stage failed, so nothing is flagged.
            request_span.add_event("no_candidates", {"recsys.fallback": "popularity"})
            path = await self._popularity_answer(query, budget, outcome, excluded)
            self._explain(outcome, path, query.k, user, [])
            return self._finish(request_span, outcome, f, excluded)
        popular = self._popularity.top(n, excluded, f) if retrieved.cold_start else []
        if popular and self._popularity.release_id:
            popular = await self._available_only(popular, budget, outcome)
        if popular and self._popularity.release_id:
            history = await self._history(user.recent_item_ids, budget)
            context = shopper_context(user, history, self._now())
            # No known item in the history: the candidates come from the DP popularity
            # release, and the ranker and reranker order and diversify them as usual. A
            # designed path, not degraded.
            request_span.add_event("cold_start", {"recsys.candidate_source": "dp_popularity"})
            outcome.versions["popularity_release"] = self._popularity.release_id
            candidates = _popularity_candidates(popular, final=False)
            await self._rank(
                candidates,
                context,
                True,
                switches,
                budget,
                outcome,
                "popularity_order",
            )
            outcome.items = await self._rerank(query, candidates, budget, outcome)
            self._explain(outcome, AnswerPath.COLD_START, query.k, user, history)
            return self._finish(request_span, outcome, f, excluded)
        path, history = await self._answer_from_retrieval(
            query, user, retrieved, excluded, (n, n_fetch), switches, budget, outcome
        )
        self._explain(outcome, path, query.k, user, history)
        return self._finish(request_span, outcome, f, excluded)

    async def _answer_from_retrieval(
        self,
        query: RecommendQuery,
        user: UserFeatures,
        retrieved: RetrievalResult,
        excluded: Sequence[str],
        counts: tuple[int, int],
        switches: StageSwitches,
        budget: Budget,
        outcome: Outcome,
    ) -> tuple[AnswerPath, list[ItemFeatures]]:
        """Retrieved candidates -> their features -> the filter -> ranker -> reranker;
        ``counts`` is (candidates wanted, candidates asked of retrieval). Returns the path
        that answered and the shopper's history items, for the reasons."""
        request_span = trace.get_current_span()
        f = query.filters
        candidates = _retrieved_candidates(retrieved)
        if retrieved.cold_start:
            # Cold start before the first DP release: the catalog order, flagged, then the
            # ranker and reranker as usual.
            self._degrade(outcome, Stage.POPULARITY, Reason.NO_DP_RELEASE, "catalog_order")
            candidates = catalog_order(candidates)
        have_features, history = await self._attach_item_features(
            candidates, user.recent_item_ids, budget, outcome
        )
        if f.needs_attributes and not have_features:
            # No attributes to check the filter on: the cached DP popularity list carries
            # its own, so it answers rather than unverifiable candidates.
            request_span.add_event("filter_unverifiable", {"recsys.fallback": "popularity"})
            return await self._popularity_answer(query, budget, outcome, excluded), history
        if not candidates:
            # Every candidate was withdrawn (out of stock, retired) since the index learned of
            # it: popular available items beat an empty page.
            request_span.add_event("no_candidates", {"recsys.fallback": "popularity"})
            return await self._popularity_answer(query, budget, outcome, excluded), history
        if f.active:
            candidates = await self._filter_candidates(
                candidates, f, user.recent_item_ids, excluded, counts, budget, outcome
            )
            if retrieved.cold_start:
                candidates = catalog_order(candidates)
            if not candidates:
                request_span.add_event("no_candidates", {"recsys.fallback": "popularity"})
                return await self._popularity_answer(query, budget, outcome, excluded), history
        await self._rank(
            candidates,
            shopper_context(user, history, self._now()),
            have_features,
            switches,
            budget,
            outcome,
        )
        outcome.items = await self._rerank(query, candidates, budget, outcome)
        path = AnswerPath.CATALOG_ORDER if retrieved.cold_start else AnswerPath.PERSONAL
        return path, history

    def _explain(
        self,
        outcome: Outcome,
        path: AnswerPath,
        k: int,
        user: UserFeatures | None,
        history: Sequence[ItemFeatures],
    ) -> None:
        """Reasons for every item (services.orchestrator.reasons): the shopper's own signals,
        the path and stages, and the DP popularity release in use."""
        shopper = ShopperSignals(
            history=tuple(history),
            purchased_item_ids=frozenset(user.purchased_item_ids) if user else frozenset(),
            favourite_categories=user.top_categories if user else (),
        )
        explain(
            outcome.items, path, shopper, self._popularity.items, self._popularity.release_id, k
        )

    def _assign(
        self,
        pseudonym: str,
        query: RecommendQuery,
        switches: StageSwitches,
        outcome: Outcome,
        request_span: trace.Span,
    ) -> tuple[RecommendQuery, StageSwitches]:
        """The shopper's experiment variants (from the pseudonym, services.orchestrator.
        experiments), applied to this request and stated in the answer and on the span."""
        config = self._experiments()
        assigned = assign(config, pseudonym)
        if not assigned:
            return query, switches
        outcome.versions["experiments"] = config.version
        outcome.assignments = [(a.experiment, a.variant.name) for a in assigned]
        for a in assigned:
            request_span.set_attribute(f"recsys.experiment.{a.experiment}", a.variant.name)
        return apply(assigned, query, switches)

    async def _filter_candidates(
        self,
        candidates: list[Candidate],
        item_filter: ItemFilter,
        recent_item_ids: Sequence[str],
        excluded: Sequence[str],
        counts: tuple[int, int],
        budget: Budget,
        outcome: Outcome,
    ) -> list[Candidate]:
        """The candidates that pass the filter, at most the candidate count. While fewer pass
        and retrieval still had more, up to ``filter_max_rounds`` rounds ask it for the next
        ones (excluding everything seen) and fetch their features. A failed extra round ends
        the search with what passed so far: a shorter list, not a degraded stage."""
        wanted, n_fetch = counts
        with self._tracer.start_as_current_span("orchestrator.filter") as span:
            kept = [c for c in candidates if passes(item_filter, c)]
            removed = len(candidates) - len(kept)
            seen = [c.item_id for c in candidates]
            seen_set = set(seen)
            last, rounds = len(candidates), 1
            recent = list(recent_item_ids)
            while len(kept) < wanted and last >= n_fetch and rounds < self._max_rounds:
                rounds += 1
                skip, n = self._bounded([*excluded, *seen], n_fetch)
                try:
                    more = await self._timed(
                        budget,
                        SHARE_RETRIEVAL,
                        functools.partial(self._b.retrieve, recent, n, skip),
                    )
                    new = [c for c in _retrieved_candidates(more) if c.item_id not in seen_set]
                    ids = [c.item_id for c in new]
                    if not ids:
                        break
                    got = await self._timed(
                        budget,
                        SHARE_ITEM_FEATURES,
                        functools.partial(self._b.item_features, ids),
                    )
                except ServiceError as exc:
                    span.add_event("filter_round_failed", {"recsys.reason": _reason(exc).value})
                    break
                by_id = {x.item_id: x for x in got.items}
                for cand in new:
                    cand.features = by_id.get(cand.item_id)
                passed = [c for c in new if passes(item_filter, c)]
                removed += len(new) - len(passed)
                kept += passed
                seen += ids
                seen_set.update(ids)
                last = len(more.candidates)
            span.set_attribute("recsys.filter.rounds", rounds)
            span.set_attribute("recsys.filter.removed", removed)
            span.set_attribute("recsys.filter.kept", len(kept))
            outcome.filtered_out += removed
            return kept[:wanted]

    def _bounded(self, excluded: Sequence[str], n: int) -> tuple[list[str], int]:
        """At most ``retrieval_max_n`` exclusions for one retrieval call (its id limit), and
        ``n`` raised by the ones left out, which the filter then removes here."""
        skip = list(excluded[: self._retrieval_max_n])
        return skip, min(self._retrieval_max_n, n + len(excluded) - len(skip))

    def _finish(
        self,
        request_span: trace.Span,
        outcome: Outcome,
        item_filter: ItemFilter,
        excluded: Sequence[str],
    ) -> Outcome:
        # The last check, on every path: whatever a stage or fallback returned, no item the
        # filter or an exclusion rules out is answered (a drop here is a bug upstream).
        skip = set(excluded)
        allowed = [c for c in outcome.items if c.item_id not in skip and passes(item_filter, c)]
        if len(allowed) != len(outcome.items):
            request_span.set_attribute(
                "recsys.filter.last_check_dropped", len(outcome.items) - len(allowed)
            )
            log.warning(
                "filtered items reached the answer",
                extra={"dropped": len(outcome.items) - len(allowed)},
            )
            outcome.items = allowed
        request_span.set_attribute("recsys.items", len(outcome.items))
        request_span.set_attribute(
            "recsys.degraded_stages", [d.stage.value for d in outcome.degraded]
        )
        outcome.versions = {k: v for k, v in outcome.versions.items() if v}
        for key, value in outcome.versions.items():
            request_span.set_attribute(f"recsys.version.{key}", value)
        return outcome

    async def _pseudonymize(self, query: RecommendQuery, budget: Budget, outcome: Outcome) -> str:
        with self._tracer.start_as_current_span("orchestrator.privacy_gateway") as span:
            try:
                response = await self._timed(
                    budget, SHARE_GATEWAY, lambda t: self._b.pseudonymize([query.user_ref], t)
                )
            except DownstreamError as exc:
                span.set_attribute("recsys.error", exc.reason.value)
                if exc.invalid_argument:
                    raise
                raise Unavailable(
                    "the privacy gateway is unavailable; no request proceeds without a pseudonym"
                ) from None
            if len(response.pseudonyms) != 1 or not response.pseudonyms[0]:
                raise Unavailable("the privacy gateway returned no pseudonym")
            outcome.versions["pseudonym_key"] = response.key_version
            span.set_attribute("recsys.key_version", response.key_version)
            return response.pseudonyms[0]

    async def _retrieve(
        self,
        recent_item_ids: Sequence[str],
        excluded: Sequence[str],
        n: int,
        budget: Budget,
        outcome: Outcome,
    ) -> RetrievalResult | None:
        recent = list(recent_item_ids)
        skip, n = self._bounded(excluded, n)
        with self._tracer.start_as_current_span("orchestrator.retrieval") as span:
            span.set_attribute("recsys.history_items", len(recent))
            span.set_attribute("recsys.excluded_items", len(excluded))
            try:
                found = await self._timed(
                    budget,
                    SHARE_RETRIEVAL,
                    lambda t: self._b.retrieve(recent, n, skip, t),
                )
            except ServiceError as exc:
                self._degrade(outcome, Stage.RETRIEVAL, _reason(exc), "popularity")
                return None
            span.set_attribute("recsys.candidates", len(found.candidates))
            span.set_attribute("recsys.index_version", found.index_version)
            span.set_attribute("recsys.cold_start", found.cold_start)
            outcome.versions["retrieval_index"] = found.index_version
            return found

    async def _history(self, recent_item_ids: Sequence[str], budget: Budget) -> list[ItemFeatures]:
        """The history's titles on their own, for candidates that came with their features
        (cold start); retrieved candidates fetch them in the same lookup as their own."""
        recent = list(recent_item_ids)
        if not recent:
            return []
        with self._tracer.start_as_current_span("orchestrator.history_features") as span:
            try:
                got = await self._timed(
                    budget, SHARE_ITEM_FEATURES, lambda t: self._b.item_features(recent, t)
                )
            except ServiceError as exc:
                # The ranker still scores without history titles; the answer is only less
                # personal, so this is an event, not a degraded stage.
                span.add_event("history_titles_missing", {"recsys.reason": _reason(exc).value})
                return []
            span.set_attribute("recsys.items", len(got.items))
            return list(got.items)

    async def _attach_item_features(
        self,
        candidates: list[Candidate],
        recent_item_ids: Sequence[str],
        budget: Budget,
        outcome: Outcome,
    ) -> tuple[bool, list[ItemFeatures]]:
        """Attach the candidates' features and return the history's, from ONE lookup: the
        history's titles used to be a second round trip to the store (beside retrieval)
        that cost every Recommend an RPC on both sides for the ~5 items of the history
        (profiled, see docs/benchmarks.md). False when the lookup failed."""
        with self._tracer.start_as_current_span("orchestrator.item_features") as span:
            ids = [c.item_id for c in candidates]
            wanted = set(ids)
            recent = list(dict.fromkeys(recent_item_ids))
            ids += [i for i in recent if i not in wanted]
            span.set_attribute("recsys.requested", len(ids))
            span.set_attribute("recsys.history_items", len(recent))
            try:
                got = await self._timed(
                    budget, SHARE_ITEM_FEATURES, lambda t: self._b.item_features(ids, t)
                )
            except ServiceError as exc:
                self._degrade(outcome, Stage.FEATURE_STORE, _reason(exc), "no_item_features")
                return False, []
            by_id = {f.item_id: f for f in got.items}
            for cand in candidates:
                cand.features = by_id.get(cand.item_id)
            # Withdrawn items (out of stock, retired) leave here, before any stage spends
            # time on them; the store's answer is live, so a withdrawal applies at once.
            kept = [c for c in candidates if c.features is None or c.features.available]
            span.set_attribute("recsys.unavailable", len(candidates) - len(kept))
            candidates[:] = kept
            missing = set(got.missing_item_ids)
            span.set_attribute("recsys.missing", len(wanted & missing))
            return True, [by_id[i] for i in recent if i in by_id]

    async def _available_only(
        self, items: Sequence[ItemFeatures], budget: Budget, outcome: Outcome
    ) -> list[ItemFeatures]:
        """``items`` (from the popularity cache, which can be minutes old) with their live
        features, unavailable ones left out, in the same order. When the store cannot say,
        the cached availability stands and the store is flagged."""
        if not items:
            return []
        ids = [f.item_id for f in items]
        with self._tracer.start_as_current_span("orchestrator.availability") as span:
            span.set_attribute("recsys.requested", len(ids))
            try:
                got = await self._timed(
                    budget, SHARE_ITEM_FEATURES, lambda t: self._b.item_features(ids, t)
                )
            except ServiceError as exc:
                self._degrade(outcome, Stage.FEATURE_STORE, _reason(exc), "cached_availability")
                return [f for f in items if f.available]
            live = {f.item_id: f.available for f in got.items}
            # The cached copy keeps its DP popularity (the release the list came from); the
            # live answer decides availability, and an id the store does not know is out.
            kept = [f for f in items if live.get(f.item_id, False)]
            span.set_attribute("recsys.unavailable", len(items) - len(kept))
            return kept

    async def _rank(
        self,
        candidates: list[Candidate],
        context: ShopperContext,
        have_features: bool,
        switches: StageSwitches,
        budget: Budget,
        outcome: Outcome,
        fallback: str = "retrieval_order",
    ) -> None:
        with self._tracer.start_as_current_span("orchestrator.ranker") as span:
            span.set_attribute("recsys.candidates", len(candidates))
            if not switches.ranker_enabled:
                # Switched off by configuration: a decision, not a failure, so not degraded;
                # versions["stage_switches"] says ranker=off.
                span.add_event("switched_off", {"recsys.fallback": fallback})
                return
            if not have_features:
                # Without titles the cross-encoder would score empty strings: keep retrieval
                # order rather than pay for meaningless scores.
                self._degrade(outcome, Stage.RANKER, Reason.NO_ITEM_FEATURES, "retrieval_order")
                return
            items = [c.features or ItemFeatures(c.item_id) for c in candidates]
            context = dataclasses.replace(
                context,
                prior_scores=tuple(c.relevance for c in candidates),
                ranking_model=switches.ranking_model,
            )
            try:
                scored = await self._timed(
                    budget, SHARE_RANKER, lambda t: self._b.score(context, items, t)
                )
            except ServiceError as exc:
                self._degrade(outcome, Stage.RANKER, _reason(exc), fallback)
                return
            scores = scored.scores
            if any(c.item_id not in scores for c in candidates):
                self._degrade(outcome, Stage.RANKER, Reason.INCOMPLETE_SCORES, fallback)
                return
            learned = bool(scored.ranking_model_version) and all(
                c.item_id in scored.relevance for c in candidates
            )
            if learned:
                # The learned ranking model's relevance; the fixed blend is only the fallback
                # for a ranker without one.
                relevance = np.array([scored.relevance[c.item_id] for c in candidates])
                keep = self._contributions_per_item
                for cand in candidates:
                    cand.contributions = scored.contributions.get(cand.item_id, ())[:keep]
                outcome.versions["ranking_model"] = scored.ranking_model_version
                span.set_attribute("recsys.ranking_model", scored.ranking_model_version)
            else:
                relevance = blend(
                    [scores[c.item_id] for c in candidates],
                    [c.relevance for c in candidates],
                    self._ranker_weight,
                )
                span.set_attribute("recsys.ranker_weight", self._ranker_weight)
            for cand, value in zip(candidates, relevance, strict=True):
                cand.relevance = float(value)
                cand.stages.append(Stage.RANKER)
            version = f"{scored.model_name}/{scored.model_version}"
            outcome.versions["ranker_model"] = version
            outcome.versions["ranker_backend"] = scored.backend
            span.set_attribute("recsys.model_version", version)
            span.set_attribute("recsys.backend", scored.backend)

    async def _rerank(
        self,
        query: RecommendQuery,
        candidates: list[Candidate],
        budget: Budget,
        outcome: Outcome,
    ) -> list[Candidate]:
        by_relevance = sorted(range(len(candidates)), key=lambda i: -candidates[i].relevance)
        for rank, i in enumerate(by_relevance):
            candidates[i].relevance_rank = rank
        with self._tracer.start_as_current_span("orchestrator.reranker") as span:
            span.set_attribute("recsys.candidates", len(candidates))
            span.set_attribute("recsys.tradeoff", query.tradeoff)
            request = RerankRequest(
                candidates=tuple(
                    RerankCandidate(
                        item_id=c.item_id,
                        relevance=c.relevance,
                        embedding=c.embedding,
                        category_path=c.category_path,
                    )
                    for c in candidates
                ),
                k=query.k,
                method=query.method,
                tradeoff=query.tradeoff,
                max_per_category=query.max_per_category,
            )
            try:
                reranked = await self._timed(
                    budget, SHARE_RERANKER, lambda t: self._b.rerank(request, t)
                )
            except ServiceError as exc:
                self._degrade(outcome, Stage.RERANKER, _reason(exc), "relevance_order")
                chosen = top_by_relevance(candidates, query.k, query.max_per_category)
                for cand in chosen:
                    cand.score = cand.relevance
                return chosen
            by_id = {c.item_id: c for c in candidates}
            chosen = []
            for item in reranked.items:
                found = by_id.pop(item.item_id, None)
                if found is None:
                    continue  # never show an item the pipeline did not retrieve, nor twice
                found.score = item.selection_score
                found.stages.append(Stage.RERANKER)
                chosen.append(found)
            if len(chosen) < query.k:
                # Greedy DPP stops early when no item adds diversity any more; the page still
                # wants k items, so the most relevant of the rest fill it, after the chosen.
                rest = list(by_id.values())
                fill = top_by_relevance(rest, query.k - len(chosen), query.max_per_category, chosen)
                for cand in fill:
                    cand.score = cand.relevance
                span.set_attribute("recsys.filled", len(fill))
                chosen += fill
            outcome.versions["reranker_method"] = reranked.method.value
            span.set_attribute("recsys.method", reranked.method.value)
            span.set_attribute("recsys.selected", len(chosen))
            return chosen

    async def _popularity_answer(
        self, query: RecommendQuery, budget: Budget, outcome: Outcome, excluded: Sequence[str]
    ) -> AnswerPath:
        """The last fallback: the cached DP popularity list; when nothing is cached yet, the
        store's live list, else a cold-start retrieval, whichever dependency is still up.

        Only a list with a release id is popularity. Without one (the store before the first
        DP release, or retrieval's cold-start list) the answer is the catalog in item-id
        order with every score 0, flagged ``popularity: no_dp_release``: never raw counts.
        """
        down = outcome.degraded_stages
        with self._tracer.start_as_current_span("orchestrator.popularity") as span:
            span.set_attribute("recsys.cached_items", len(self._popularity.items))
            f = query.filters
            release = self._popularity.release_id
            if Stage.FEATURE_STORE in down:
                items = self._popularity.top(query.k, excluded, f)
            else:
                # The cache can be minutes old and a withdrawal must apply at once: check the
                # head of the list live, with room for what the check takes out.
                head = self._popularity.top(2 * query.k, excluded, f)
                items = (await self._available_only(head, budget, outcome))[: query.k]
            # The store filters nothing but ids, so a filter reading attributes asks it for more.
            limit = query.k * self._overfetch if f.needs_attributes else query.k
            if not items and Stage.FEATURE_STORE not in down:
                span.add_event("popularity_cache_empty", {"recsys.fallback": "live_popularity"})
                try:
                    live = await self._timed(
                        budget,
                        SHARE_ITEM_FEATURES,
                        lambda t: self._b.popular_items(limit, list(excluded), t),
                    )
                    items = [
                        x for x in live.items if f.accepts(x.item_id, x.category_path, x.price)
                    ]
                    items, release = items[: query.k], live.release_id
                except ServiceError as exc:
                    span.set_attribute("recsys.error", _reason(exc).value)
            if items and release:
                span.set_attribute("recsys.candidate_source", "dp_popularity")
                outcome.versions["popularity_release"] = release
                outcome.items = _popularity_candidates(items, final=True)
                return AnswerPath.POPULARITY_FALLBACK
            if items:
                span.set_attribute("recsys.candidate_source", "catalog_order")
                self._degrade(outcome, Stage.POPULARITY, Reason.NO_DP_RELEASE, "catalog_order")
                outcome.items = catalog_order(
                    [Candidate(item_id=f.item_id, features=f) for f in items]
                )
                return AnswerPath.CATALOG_ORDER
            if Stage.RETRIEVAL in down:
                raise Unavailable("no stage could produce recommendations")
            if f.needs_attributes:
                # Retrieval's cold-start list has no category or price to check: an empty,
                # short answer rather than items the filter may rule out.
                span.add_event("filter_unverifiable", {"recsys.fallback": "none"})
                outcome.items = []
                return AnswerPath.CATALOG_ORDER
            span.add_event("popularity_unavailable", {"recsys.fallback": "retrieval_cold_start"})
            try:
                found = await self._timed(
                    budget,
                    SHARE_RETRIEVAL,
                    lambda t: self._b.retrieve([], query.k, list(excluded), t),
                )
            except ServiceError as exc:
                span.set_attribute("recsys.error", _reason(exc).value)
                raise Unavailable("no stage could produce recommendations") from None
            span.set_attribute("recsys.candidate_source", "catalog_order")
            self._degrade(outcome, Stage.POPULARITY, Reason.NO_DP_RELEASE, "catalog_order")
            outcome.versions["retrieval_index"] = found.index_version
            listed = [
                Candidate(item_id=c.item_id, stages=[Stage.RETRIEVAL]) for c in found.candidates
            ]
            if Stage.FEATURE_STORE not in outcome.degraded_stages:
                await self._attach_item_features(listed, [], budget, outcome)
            outcome.items = catalog_order(listed)[: query.k]
            return AnswerPath.CATALOG_ORDER

    # ---- SimilarItems --------------------------------------------------------------------

    async def similar(self, query: SimilarQuery, budget: Budget) -> Outcome:
        """Items near one item's embedding, withdrawn ones out, diversified by the reranker.

        No shopper is involved, so neither the gateway nor user features are asked, and the
        ranker (a cross-encoder of a shopper's context against an item) does not run:
        relevance is the embedding similarity. The seed item is never returned.
        """
        outcome = Outcome()
        request_span = trace.get_current_span()
        request_span.set_attribute("recsys.k", query.k)
        switches = self._switches()
        if query.method is RerankMethod.UNSPECIFIED:
            query = dataclasses.replace(query, method=switches.default_reranker_method)
        f = query.filters
        excluded = [
            i
            for i in dict.fromkeys([*query.excluded_item_ids, *sorted(f.excluded_item_ids)])
            if i != query.item_id
        ]
        # As in Recommend: a category or price filter is checked on the item features, so
        # retrieval is asked for more neighbours.
        n = switches.candidate_count
        n_fetch = min(self._retrieval_max_n, n * self._overfetch) if f.needs_attributes else n
        with self._tracer.start_as_current_span("orchestrator.retrieval") as span:
            span.set_attribute("recsys.excluded_items", len(excluded))
            try:
                found = await self._timed(
                    budget,
                    SHARE_RETRIEVAL,
                    lambda t: self._b.similar_items(query.item_id, n_fetch, excluded, t),
                )
            except DownstreamError as exc:
                if exc.reason is Reason.NOT_FOUND:
                    raise NotFound("no such item in the catalog's embedding index") from None
                if exc.invalid_argument:
                    raise
                # Without the index there is no notion of "near": an honest error, not an
                # unrelated list (the popularity list is what Recommend falls back to).
                self._degrade(outcome, Stage.RETRIEVAL, exc.reason, "none")
                raise Unavailable("similar items need the retrieval index, which is down") from None
            except ServiceError as exc:
                self._degrade(outcome, Stage.RETRIEVAL, _reason(exc), "none")
                raise Unavailable("similar items need the retrieval index, which is down") from None
            span.set_attribute("recsys.candidates", len(found.candidates))
            span.set_attribute("recsys.index_version", found.index_version)
            outcome.versions["retrieval_index"] = found.index_version
        candidates = [
            Candidate(
                item_id=c.item_id,
                retrieval_score=c.score,
                relevance=c.score,
                embedding=c.embedding,
                stages=[Stage.RETRIEVAL],
            )
            for c in found.candidates
            if c.item_id != query.item_id
        ]
        have_features, _ = await self._attach_item_features(candidates, [], budget, outcome)
        if f.needs_attributes and not have_features:
            # Nothing to check the filter on: an empty, short answer, never unchecked items.
            request_span.add_event("filter_unverifiable", {"recsys.fallback": "none"})
            candidates = []
        elif f.active:
            kept = [c for c in candidates if passes(f, c)]
            outcome.filtered_out += len(candidates) - len(kept)
            candidates = kept[:n]
        if not candidates:
            return self._finish(request_span, outcome, f, excluded)
        recommend = RecommendQuery(
            user_ref="",
            k=query.k,
            method=query.method,
            tradeoff=query.tradeoff,
            max_per_category=query.max_per_category,
        )
        outcome.items = await self._rerank(recommend, candidates, budget, outcome)
        self._explain(outcome, AnswerPath.SIMILAR, query.k, None, [])
        return self._finish(request_span, outcome, f, excluded)

    # ---- LogEvents -----------------------------------------------------------------------

    async def log_events(self, events: Sequence[ShopperEvent], budget: Budget) -> IngestResult:
        """Pseudonymize the users, then store the events."""
        refs = sorted({e.user_ref for e in events})
        with self._tracer.start_as_current_span("orchestrator.privacy_gateway") as span:
            span.set_attribute("recsys.users", len(refs))
            try:
                pseudo = await self._timed(
                    budget, SHARE_GATEWAY, lambda t: self._b.pseudonymize(refs, t)
                )
            except DownstreamError as exc:
                if exc.invalid_argument:
                    raise
                raise Unavailable(
                    "the privacy gateway is unavailable; events are not stored without pseudonyms"
                ) from None
            if len(pseudo.pseudonyms) != len(refs) or not all(pseudo.pseudonyms):
                raise Unavailable("the privacy gateway returned an incomplete answer")
            span.set_attribute("recsys.key_version", pseudo.key_version)
        by_ref = dict(zip(refs, pseudo.pseudonyms, strict=True))
        now = self._now()
        stored = [
            StoredEvent(
                event_id=e.event_id,
                user_id=by_ref[e.user_ref],
                item_id=e.item_id,
                type=e.type,
                timestamp=e.timestamp or now,
                quantity=e.quantity,
                recommendation_id=e.recommendation_id,
                position=e.position,
            )
            for e in events
        ]
        with self._tracer.start_as_current_span("orchestrator.ingest_events") as span:
            span.set_attribute("recsys.events", len(stored))
            # The store acknowledges only after its durable write, so our answer does too;
            # its INVALID_ARGUMENT passes through with the field it names.
            result = await self._b.ingest_events(stored, budget.timeout_for(1.0))
            span.set_attribute("recsys.accepted", result.accepted)
            span.set_attribute("recsys.duplicates", result.duplicates)
        return result
