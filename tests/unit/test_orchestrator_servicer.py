"""The orchestrator's public edge without a server: requests become domain values, the
pipeline's Outcome becomes the response, and the enums map one to one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2

from services.orchestrator.clients import (
    event_to_proto,
    rerank_method_from_proto,
    rerank_method_to_proto,
)
from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import (
    Candidate,
    EventType,
    ItemFeatures,
    Outcome,
    Reason,
    RerankMethod,
    Stage,
    StoredEvent,
)
from services.orchestrator.servicer import (
    build_response,
    stage_to_proto,
    validate_events,
    validate_recommend,
)
from shared.errors import InvalidArgument
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2

SETTINGS = OrchestratorSettings()  # type: ignore[call-arg]


def test_every_domain_enum_maps_onto_its_protobuf_twin() -> None:
    assert {stage_to_proto(s) for s in Stage} == set(common_pb2.Stage.values()) - {0}
    for method in RerankMethod:
        assert rerank_method_from_proto(rerank_method_to_proto(method)) is method
    assert set(common_pb2.RerankMethod.values()) == {
        rerank_method_to_proto(m) for m in RerankMethod
    }
    assert {Reason.from_status(c) for c in ("UNAVAILABLE", "DEADLINE_EXCEEDED")} == {
        Reason.UNAVAILABLE,
        Reason.DEADLINE_EXCEEDED,
    }
    assert Reason.from_status("SOMETHING_NEW") is Reason.ERROR


def test_recommend_request_becomes_a_query_without_the_context() -> None:
    request = orchestrator_pb2.RecommendRequest(
        user_ref="shopper-1",
        k=3,
        context={"page": "/home?email=a@b.co", "device": "tv"},
        diversity=orchestrator_pb2.DiversitySettings(
            method=common_pb2.RERANK_METHOD_MMR, tradeoff=0.2, max_per_category=2
        ),
        excluded_item_ids=["A", "B"],
        exclude_purchased=True,
    )
    query = validate_recommend(request, SETTINGS)
    assert query.method is RerankMethod.MMR
    assert (query.k, query.tradeoff, query.max_per_category) == (3, pytest.approx(0.2), 2)
    assert query.excluded_item_ids == ("A", "B")
    assert query.exclude_purchased
    # The raw context never enters the pipeline.
    assert "/home" not in repr(query)
    assert not hasattr(query, "context")


def test_without_diversity_settings_the_default_tradeoff_applies() -> None:
    query = validate_recommend(orchestrator_pb2.RecommendRequest(user_ref="u", k=1), SETTINGS)
    assert query.tradeoff == SETTINGS.default_tradeoff
    assert query.method is RerankMethod.UNSPECIFIED


def test_events_become_domain_values() -> None:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    request = orchestrator_pb2.LogEventsRequest(
        events=[
            orchestrator_pb2.ShopperEvent(
                event_id="e1", user_ref="u", item_id="I", type=common_pb2.EVENT_TYPE_ADD_TO_CART
            ),
            orchestrator_pb2.ShopperEvent(
                event_id="e2",
                user_ref="u",
                item_id="I",
                type=common_pb2.EVENT_TYPE_PURCHASE,
                timestamp=stamp,
                quantity=4,
            ),
        ]
    )
    first, second = validate_events(request, SETTINGS)
    assert (first.type, first.timestamp, first.quantity) == (EventType.ADD_TO_CART, None, 1)
    assert second.type is EventType.PURCHASE
    assert second.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert second.quantity == 4


def test_an_event_timestamp_out_of_range_is_invalid() -> None:
    request = orchestrator_pb2.LogEventsRequest(
        events=[
            orchestrator_pb2.ShopperEvent(
                event_id="e1",
                user_ref="u",
                item_id="I",
                type=common_pb2.EVENT_TYPE_VIEW,
                timestamp=timestamp_pb2.Timestamp(seconds=10**15),
            )
        ]
    )
    with pytest.raises(InvalidArgument, match=r"events\[0\]\.timestamp is out of range"):
        validate_events(request, SETTINGS)


def test_stored_event_keeps_its_instant_in_protobuf() -> None:
    at = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    proto = event_to_proto(StoredEvent("e", "v1.x", "I", EventType.VIEW, at, 2))
    assert proto.timestamp.ToDatetime(tzinfo=UTC) == at
    assert proto.type == common_pb2.EVENT_TYPE_VIEW
    assert (proto.user_id, proto.quantity) == ("v1.x", 2)


def test_outcome_becomes_the_response() -> None:
    outcome = Outcome(
        items=[
            Candidate(
                item_id="I1",
                retrieval_score=0.5,
                relevance=1.5,
                score=2.5,
                features=ItemFeatures("I1", "mug", ("home", "kitchen"), 3.0),
                stages=[Stage.RETRIEVAL, Stage.RERANKER],
            ),
            Candidate(item_id="I2", stages=[Stage.RETRIEVAL]),
        ],
        versions={"retrieval_index": "v7"},
    )
    outcome.degrade(Stage.RANKER, Reason.DEADLINE_EXCEEDED)
    outcome.degrade(Stage.RANKER, Reason.UNAVAILABLE)  # the first reason is kept
    response = build_response(outcome, "abc")
    first, second = response.items
    assert (first.title, list(first.category_path), first.price) == (
        "mug",
        ["home", "kitchen"],
        3.0,
    )
    assert (first.score, first.relevance_score, first.retrieval_score) == (2.5, 1.5, 0.5)
    assert list(first.stages) == [common_pb2.STAGE_RETRIEVAL, common_pb2.STAGE_RERANKER]
    assert (second.title, list(second.category_path)) == ("", [])
    assert [(d.stage, d.reason) for d in response.degraded_stages] == [
        (common_pb2.STAGE_RANKER, "deadline_exceeded")
    ]
    assert dict(response.versions) == {"retrieval_index": "v7"}
    assert response.trace_id == "abc"


@pytest.mark.parametrize("module", ["blend", "domain", "downstream", "pipeline", "popularity"])
def test_the_domain_modules_import_no_protobuf_and_no_grpc(module: str) -> None:
    """Conversion happens at the edge (clients.py, servicer.py) only."""
    import ast
    from pathlib import Path

    import services.orchestrator

    source = Path(services.orchestrator.__file__).with_name(f"{module}.py").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    banned = ("shared.gen", "grpc", "google.protobuf")
    assert not {m for m in imported if m.startswith(banned)}
