"""The one place where shopper context and item text are built, for training, the local
backend, the Triton path and the service alike, so a model never sees text at serving time
that is formatted differently from what it was trained on.

Price bands (unit price in the catalog currency, lower bound inclusive):

======== ============
band     price
======== ============
budget   below 1
low      1 to < 3
mid      3 to < 10
high     10 to < 30
premium  30 and above
======== ============

The bounds were chosen so the real Online Retail catalog (median 1.65, 90th percentile 6.95)
and the synthetic catalog (category levels 6 to 55) both spread over several bands.
"""

from __future__ import annotations

from collections.abc import Sequence

# Bumped whenever the format changes; stored in meta.json so a model trained on one format is
# never served with another.
TEXT_FORMAT_VERSION = 1

PRICE_BANDS: tuple[tuple[float, str], ...] = (
    (1.0, "budget"),
    (3.0, "low"),
    (10.0, "mid"),
    (30.0, "high"),
)
TOP_PRICE_BAND = "premium"


def price_band(price: float) -> str:
    """The band name of ``price``; non-positive or unknown prices read as "unknown"."""
    if not price > 0:
        return "unknown"
    for upper, name in PRICE_BANDS:
        if price < upper:
            return name
    return TOP_PRICE_BAND


def context_text(
    recent_titles: Sequence[str],
    categories: Sequence[str] = (),
    *,
    max_titles: int = 8,
    max_categories: int = 4,
) -> str:
    """Shopper side of the pair: recent titles (newest first), then favoured categories.

    Newest first means that truncation by the tokenizer drops the oldest history.
    """
    titles = [t.strip().lower() for t in recent_titles if t.strip()][:max_titles]
    cats = [c.strip().lower() for c in categories if c.strip()][:max_categories]
    parts = ["recent: " + ("; ".join(titles) if titles else "none")]
    if cats:
        parts.append("likes: " + ", ".join(cats))
    return " | ".join(parts)


def item_text(title: str, category_path: Sequence[str], price: float) -> str:
    """Candidate side of the pair: title, category path and price band."""
    path = " > ".join(c.strip().lower() for c in category_path if c.strip())
    return f"{title.strip().lower()} | category: {path or 'none'} | price: {price_band(price)}"
