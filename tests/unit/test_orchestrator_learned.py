"""The orchestrator with a ranker that has a learned ranking model: its relevance orders the
candidates (not the fixed blend), its top contributions reach the public Recommendation, and
the shopper's own interactions reach the ranker. The in-memory dependencies are those of
test_orchestrator_degradation; the ranker's answer goes through the real proto conversion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from services.orchestrator.clients import score_request_to_proto, scores_from_proto
from services.orchestrator.domain import (
    ItemFeatures,
    ItemInteraction,
    Scores,
    ShopperContext,
    UserFeatures,
)
from services.orchestrator.experiments import ExperimentsConfig
from services.orchestrator.pipeline import Pipeline
from services.orchestrator.servicer import build_response
from shared.gen.acme.recsys.v1 import common_pb2, ranker_pb2
from tests.unit.test_orchestrator_degradation import (
    KNOWN,
    RANKER_SCORES,
    SHOPPER,
    Dependencies,
    FakeClock,
    Harness,
    _settings,
)

# The learned model prefers odd item numbers, the cross-encoder (RANKER_SCORES) high ones.
LEARNED = {
    item: (1.0 if int(item[1:]) % 2 else 0.0) - 0.01 * n for n, item in enumerate(RANKER_SCORES)
}
SEEN = datetime(2026, 2, 20, tzinfo=UTC)


class LearnedRanker(Dependencies):
    """Answers like a ranker with a learned model; records the requests it was sent."""

    requests: list[ranker_pb2.ScoreCandidatesRequest]

    async def score(
        self, context: ShopperContext, items: Sequence[ItemFeatures], timeout_s: float
    ) -> Scores:
        await super().score(context, items, timeout_s)
        request = score_request_to_proto(context, items)
        self.requests.append(request)
        response = ranker_pb2.ScoreCandidatesResponse(
            model_name="minilm",
            model_version="h1",
            backend="cpu",
            ranking_model_version="ltr-7",
        )
        for f in items:
            response.scores.append(
                ranker_pb2.ScoredItem(
                    item_id=f.item_id,
                    score=RANKER_SCORES[f.item_id],
                    relevance=LEARNED[f.item_id],
                    contributions=[
                        common_pb2.FeatureContribution(feature="own_event_count", value=0.5),
                        common_pb2.FeatureContribution(feature="bert_score_z", value=-0.25),
                        common_pb2.FeatureContribution(feature="retrieval_rank", value=0.125),
                        common_pb2.FeatureContribution(feature="category_affinity", value=0.0625),
                    ],
                )
            )
        return scores_from_proto(response)


async def test_learned_relevance_and_contributions_reach_the_response() -> None:
    clock = FakeClock()
    interactions = (ItemInteraction("I03", 4, 2, SEEN), ItemInteraction("I07", 1, 0, SEEN))
    user = UserFeatures(
        known_user=True,
        recent_item_ids=KNOWN.recent_item_ids,
        purchased_item_ids=KNOWN.purchased_item_ids,
        top_categories=KNOWN.top_categories,
        category_affinities=(("garden", 0.75), ("toys", 0.25)),
        item_interactions=interactions,
    )
    deps = LearnedRanker(clock, users={f"v1.p-{SHOPPER}": user})
    deps.requests = []
    harness = Harness(deps, _settings(contributions_per_item=2))
    await harness.fill_cache()
    out = await harness.recommend()
    assert not out.degraded
    assert out.versions["ranking_model"] == "ltr-7"
    # The reranker got the learned relevance, not the blend of the two scores.
    request = deps.rerank_requests[0]
    assert [c.relevance for c in request.candidates] == [
        LEARNED[c.item_id] for c in request.candidates
    ]
    # The two largest contributions of each item, in the ranker's order, reach the answer.
    response = build_response(out, "trace")
    assert response.versions["ranking_model"] == "ltr-7"
    for item in response.items:
        assert [(c.feature, c.value) for c in item.contributions] == [
            ("own_event_count", 0.5),
            ("bert_score_z", -0.25),
        ]
        assert item.relevance_score == LEARNED[item.item_id]
    # The ranker was sent what its features need: the shopper's own history, affinities,
    # each candidate's retrieval score and DP popularity, and the request time.
    sent = deps.requests[0]
    assert [
        (x.item_id, x.event_count, x.purchased_quantity) for x in sent.context.item_interactions
    ] == [
        ("I03", 4, 2),
        ("I07", 1, 0),
    ]
    assert sent.context.item_interactions[0].last_event_time.ToDatetime(tzinfo=UTC) == SEEN
    assert {a.category: a.score for a in sent.context.category_affinities} == {
        "garden": 0.75,
        "toys": 0.25,
    }
    assert sent.context.HasField("request_time")
    scores = [c.retrieval_score for c in sent.candidates]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 0
    assert any(c.dp_popularity > 0 for c in sent.candidates)


async def test_without_a_ranking_model_the_blend_stays_and_nothing_is_explained() -> None:
    deps = Dependencies(FakeClock())
    harness = Harness(deps, _settings())
    await harness.fill_cache()
    out = await harness.recommend()
    assert "ranking_model" not in out.versions
    response = build_response(out, "trace")
    assert all(not item.contributions for item in response.items)


async def test_an_experiment_variant_names_the_ranking_model_the_ranker_applies() -> None:
    config = ExperimentsConfig.model_validate(
        {
            "version": "v1",
            "experiments": [
                {
                    "name": "ranking",
                    "salt": "salt-rank-1",
                    "variants": [{"name": "other", "share": 1.0, "ranking_model": "ltr-other"}],
                }
            ],
        }
    )
    deps = LearnedRanker(FakeClock())
    deps.requests = []
    settings = _settings()
    harness = Harness(deps, settings)
    harness.pipeline = Pipeline(deps, harness.popularity, settings, experiments=lambda: config)
    await harness.fill_cache()
    out = await harness.recommend()
    assert out.assignments == [("ranking", "other")]
    assert [r.ranking_model for r in deps.requests] == ["ltr-other"]
    assert out.versions["experiments"] == "v1"
