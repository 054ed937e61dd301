"""Page tokens and the Recommend edge's filter and token checks, without a server."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import pytest

from services.orchestrator.config import OrchestratorSettings
from services.orchestrator.domain import Candidate, Outcome
from services.orchestrator.paging import InvalidPageToken, PageTokens, request_binding
from services.orchestrator.servicer import build_response, page_tokens, validate_recommend
from shared.errors import InvalidArgument
from shared.gen.acme.recsys.v1 import common_pb2, orchestrator_pb2

SETTINGS = OrchestratorSettings()  # type: ignore[call-arg]
KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _query(**kw: object) -> str:
    request = orchestrator_pb2.RecommendRequest(user_ref="alice", k=3, **kw)  # type: ignore[arg-type]
    return request_binding(validate_recommend(request, SETTINGS))


def test_a_token_carries_every_id_shown_so_far_and_the_lineage() -> None:
    tokens = PageTokens(KEY, ttl_s=60, max_shown=100, clock=Clock())
    binding = _query()
    first = tokens.first_page()
    second = tokens.read(tokens.next_token(first, ["A", "B", "C"], binding), binding)
    third = tokens.read(tokens.next_token(second, ["D", "E", "F"], binding), binding)
    assert third.shown_item_ids == ("A", "B", "C", "D", "E", "F")
    assert (second.number, third.number) == (1, 2)
    assert first.lineage == second.lineage == third.lineage


def test_tampered_expired_foreign_and_mismatched_tokens_are_refused_clearly() -> None:
    clock = Clock()
    tokens = PageTokens(KEY, ttl_s=60, max_shown=100, clock=clock)
    binding = _query()
    token = tokens.next_token(tokens.first_page(), ["A"], binding)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] ^= 1
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(InvalidPageToken, match="altered or signed with another key"):
        tokens.read(tampered, binding)
    with pytest.raises(InvalidPageToken, match="altered or signed with another key"):
        PageTokens(b"x" * 32, 60, 100, clock).read(token, binding)
    with pytest.raises(InvalidPageToken, match="not a token this service issued"):
        tokens.read("not base64 !", binding)
    with pytest.raises(InvalidPageToken, match="belongs to another request"):
        tokens.read(token, _query(filters=common_pb2.Filters(min_price=1.0)))
    with pytest.raises(InvalidPageToken, match="belongs to another request"):
        tokens.read(
            token,
            request_binding(
                validate_recommend(orchestrator_pb2.RecommendRequest(user_ref="bob", k=3), SETTINGS)
            ),
        )
    # k may change between pages.
    assert tokens.read(token, _query()).shown_item_ids == ("A",)
    clock.now += 61
    with pytest.raises(InvalidPageToken, match="expired"):
        tokens.read(token, binding)


def test_tokens_stop_at_the_shown_limit_and_stay_small() -> None:
    tokens = PageTokens(KEY, ttl_s=60, max_shown=500, clock=Clock())
    binding = _query()
    page = tokens.first_page()
    ids = [f"SKU{i:06d}" for i in range(500)]
    token = tokens.next_token(page, ids, binding)
    assert 0 < len(token) < 8000
    assert tokens.next_token(page, [*ids, "one-more"], binding) == ""


def test_the_token_does_not_reveal_the_user_reference() -> None:
    tokens = PageTokens(KEY, ttl_s=60, max_shown=10, clock=Clock())
    token = tokens.next_token(tokens.first_page(), ["A"], _query())
    body = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[:-32]
    assert b"alice" not in zlib.decompress(body)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (common_pb2.Filters(min_price=9, max_price=1), "min_price (9.0) must not be above"),
        (
            common_pb2.Filters(include_categories=[common_pb2.CategoryPrefix()]),
            "filters.include_categories[0] is an empty prefix",
        ),
        (
            common_pb2.Filters(exclude_categories=[common_pb2.CategoryPrefix(levels=["a"])] * 21),
            "filters.exclude_categories must hold at most 20",
        ),
        (common_pb2.Filters(min_price=-1), "filters.min_price must be a finite price"),
    ],
)
def test_bad_filters_are_invalid_argument(filters: common_pb2.Filters, message: str) -> None:
    request = orchestrator_pb2.RecommendRequest(user_ref="u", k=3, filters=filters)
    with pytest.raises(InvalidArgument) as err:
        validate_recommend(request, SETTINGS)
    assert message in str(err.value)


def test_a_short_answer_says_so() -> None:
    outcome = Outcome(items=[Candidate(item_id="A")], filtered_out=7)
    response = build_response(outcome, "t", k=3, next_page_token="")
    assert response.filtered_short
    assert response.filtered_out_count == 7
    full = build_response(Outcome(items=[Candidate(item_id=i) for i in "ABC"]), "t", k=3)
    assert not full.filtered_short


def test_the_key_comes_from_a_file_first_and_is_shared_by_replicas(tmp_path: Path) -> None:
    key_file = tmp_path / "page-token-key"
    key_file.write_text("s" * 32 + "\n")
    settings = OrchestratorSettings(page_token_key_file=str(key_file), page_token_key="x" * 32)  # type: ignore[call-arg]
    one, two = page_tokens(settings), page_tokens(settings)
    binding = _query()
    token = one.next_token(one.first_page(), ["A"], binding)
    assert two.read(token, binding).shown_item_ids == ("A",)
    other = page_tokens(OrchestratorSettings(page_token_key="x" * 32))  # type: ignore[call-arg]
    with pytest.raises(InvalidPageToken):
        other.read(token, binding)
