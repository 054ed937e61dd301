"""Pair texts of the ranker: price bands, context and item formatting."""

from __future__ import annotations

import pytest

from shared.ranker_text import context_text, item_text, price_band


@pytest.mark.parametrize(
    ("price", "band"),
    [
        (0.0, "unknown"),
        (-3.0, "unknown"),
        (float("nan"), "unknown"),
        (0.99, "budget"),
        (1.0, "low"),
        (2.99, "low"),
        (3.0, "mid"),
        (9.99, "mid"),
        (10.0, "high"),
        (29.99, "high"),
        (30.0, "premium"),
        (5000.0, "premium"),
    ],
)
def test_price_bands_have_inclusive_lower_bounds(price: float, band: str) -> None:
    assert price_band(price) == band


def test_context_keeps_the_newest_titles_and_skips_blanks() -> None:
    titles = [f"ITEM {i}" for i in range(20)]
    text = context_text(["  ", *titles], ["Home", "", "Toys"], max_titles=3)
    assert text == "recent: item 0; item 1; item 2 | likes: home, toys"


def test_context_without_history_says_so() -> None:
    assert context_text([], []) == "recent: none"


def test_item_text_has_title_path_and_band() -> None:
    assert item_text(" RED MUG ", ["home", "kitchen", "mug"], 4.5) == (
        "red mug | category: home > kitchen > mug | price: mid"
    )
    assert item_text("x", [], 0) == "x | category: none | price: unknown"
