"""The item filter of the public API: category include/exclude by path prefix, a price range
and excluded ids. The ONE predicate every path applies (retrieval rounds, the cold-start and
popularity lists, the reranker's fallback, the last check of an answer), so no path can let a
filtered item through by testing it differently.

Plain values, no protobuf: the servicers convert the ``Filters`` message and report an
``InvalidFilter`` as INVALID_ARGUMENT with its message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Limits of one filter, so a request cannot make every candidate check expensive.
MAX_PREFIXES = 20
MAX_LEVELS = 10
MAX_LEVEL_LENGTH = 128


class InvalidFilter(ValueError):
    """A filter that cannot be applied; the message names the field and the rule."""


def _level(value: str) -> str:
    return value.strip().casefold()


@dataclass(frozen=True)
class ItemFilter:
    """Which items an answer may hold. Category levels are kept normalised (stripped,
    case-folded); a path matches a prefix when its first levels equal the prefix's."""

    include_categories: tuple[tuple[str, ...], ...] = ()
    exclude_categories: tuple[tuple[str, ...], ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    excluded_item_ids: frozenset[str] = frozenset()

    @classmethod
    def create(
        cls,
        *,
        include_categories: Iterable[Sequence[str]] = (),
        exclude_categories: Iterable[Sequence[str]] = (),
        min_price: float | None = None,
        max_price: float | None = None,
        excluded_item_ids: Iterable[str] = (),
        field: str = "filters",
    ) -> ItemFilter:
        """A checked filter, or InvalidFilter naming the bad part (``field`` prefixes it)."""
        include = _prefixes(f"{field}.include_categories", include_categories)
        exclude = _prefixes(f"{field}.exclude_categories", exclude_categories)
        for name, value in (("min_price", min_price), ("max_price", max_price)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidFilter(f"{field}.{name} must be a finite price >= 0, got {value}")
        if min_price is not None and max_price is not None and min_price > max_price:
            raise InvalidFilter(
                f"{field}.min_price ({min_price}) must not be above max_price ({max_price})"
            )
        ids = frozenset(excluded_item_ids)
        if any(not i for i in ids):
            raise InvalidFilter(f"{field}.excluded_item_ids must not hold an empty id")
        return cls(include, exclude, min_price, max_price, ids)

    @property
    def needs_attributes(self) -> bool:
        """True when the filter reads an item's category or price, not only its id."""
        return bool(
            self.include_categories
            or self.exclude_categories
            or self.min_price is not None
            or self.max_price is not None
        )

    @property
    def active(self) -> bool:
        return self.needs_attributes or bool(self.excluded_item_ids)

    def accepts(
        self,
        item_id: str,
        category_path: Sequence[str] | None,
        price: float | None,
    ) -> bool:
        """Whether an item passes. ``None`` attributes are unknown (no catalog entry): an item
        whose attributes are unknown passes only a filter that does not read them, so an
        unverifiable item is never shown (fail closed)."""
        if item_id in self.excluded_item_ids:
            return False
        if not self.needs_attributes:
            return True
        if category_path is None or price is None:
            return False
        path = tuple(_level(c) for c in category_path)
        if self.include_categories and not any(
            path[: len(p)] == p for p in self.include_categories
        ):
            return False
        if any(path[: len(p)] == p for p in self.exclude_categories):
            return False
        if self.min_price is not None and price < self.min_price:
            return False
        return self.max_price is None or price <= self.max_price

    def describe(self) -> str:
        """A stable text of the filter, for the page token's binding to its request."""
        parts = [
            "in=" + "|".join(">".join(p) for p in sorted(self.include_categories)),
            "out=" + "|".join(">".join(p) for p in sorted(self.exclude_categories)),
            f"min={self.min_price}",
            f"max={self.max_price}",
            "ids=" + "|".join(sorted(self.excluded_item_ids)),
        ]
        return ";".join(parts)


NO_FILTER = ItemFilter()


def _prefixes(field: str, values: Iterable[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    out: list[tuple[str, ...]] = []
    for i, levels in enumerate(values):
        if i >= MAX_PREFIXES:
            raise InvalidFilter(f"{field} must hold at most {MAX_PREFIXES} prefixes")
        if not levels:
            raise InvalidFilter(f"{field}[{i}] is an empty prefix; give at least one level")
        if len(levels) > MAX_LEVELS:
            raise InvalidFilter(f"{field}[{i}] has {len(levels)} levels; at most {MAX_LEVELS}")
        prefix = tuple(_level(v) for v in levels)
        if any(not v or len(v) > MAX_LEVEL_LENGTH for v in prefix):
            raise InvalidFilter(
                f"{field}[{i}] has an empty level or one over {MAX_LEVEL_LENGTH} characters"
            )
        out.append(prefix)
    return tuple(dict.fromkeys(out))
