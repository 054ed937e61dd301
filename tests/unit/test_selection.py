"""shared.selection: the category-capped top k that the reranker and the orchestrator share."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.selection import capped_top_k, category_codes, top_k_by_category


def test_ties_keep_input_order_and_k_bounds_the_answer() -> None:
    assert capped_top_k([1.0, 3.0, 3.0, 2.0], 3).tolist() == [1, 2, 3]
    assert capped_top_k([1.0, 2.0], 5).tolist() == [1, 0]
    assert capped_top_k([], 3).tolist() == []


def test_the_cap_skips_items_of_a_full_category() -> None:
    codes = category_codes(["a", "a", "b", "a", "b"])
    got = capped_top_k([5.0, 4.0, 3.0, 2.0, 1.0], 5, codes, max_per_category=1)
    assert got.tolist() == [0, 2]


def test_uncategorised_items_are_never_capped() -> None:
    got = top_k_by_category([3.0, 2.0, 1.0, 0.5], ["", "", "x", "x"], 4, max_per_category=1)
    assert got == [0, 1, 2]


def test_items_already_on_the_page_count_against_the_cap() -> None:
    got = top_k_by_category(
        [9.0, 8.0, 7.0, 6.0], ["a", "b", "a", "c"], 3, max_per_category=2, taken=["a", "b"]
    )
    # "a" has one slot left, "b" one, "c" two: 9 (a) and 8 (b) fill them, then 6 (c).
    assert got == [0, 1, 3]
    assert top_k_by_category([1.0], ["a"], 1, 1, taken=["a"]) == []


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per item"):
        top_k_by_category([1.0, 2.0], ["a"], 1)
    with pytest.raises(ValueError, match="taken"):
        capped_top_k([1.0], 1, taken=2)
    with pytest.raises(ValueError, match="max_per_category"):
        capped_top_k([1.0], 1, max_per_category=-1)


@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6), st.sampled_from(["", "a", "b", "c"])),
        max_size=30,
    ),
    st.integers(0, 12),
    st.integers(0, 3),
)
def test_the_answer_is_the_greedy_capped_relevance_order(
    items: list[tuple[float, str]], k: int, cap: int
) -> None:
    relevance = [r for r, _ in items]
    labels = [c for _, c in items]
    got = top_k_by_category(relevance, labels, k, cap)
    # A reference written out longhand: walk the stable relevance order, skip full labels.
    want: list[int] = []
    used: dict[str, int] = {}
    for j in np.argsort(-np.asarray(relevance, dtype=np.float64), kind="stable"):
        if len(want) >= k:
            break
        label = labels[j]
        if cap and label and used.get(label, 0) >= cap:
            continue
        used[label] = used.get(label, 0) + 1
        want.append(int(j))
    assert got == want
