"""The interchange format: a folder with ``items`` and ``events``, as CSV or Parquet, optionally
gzip-compressed (``items.csv``, ``items.csv.gz``, ``items.parquet``, ``events.parquet.gz``, ...).

``ItemRow`` and ``EventRow`` are the single definition of the columns: the loader reads the
column names, which are required, their types and their bounds from these models, and
docs/data.md prints them. Rows are checked column by column on whole pandas/pyarrow arrays,
never row by row, so a million events load in seconds. A bad value is reported as
``FILE:LINE: COLUMN "VALUE" is not ...`` (LINE counts the header as line 1; Parquet files
report the row number); by default the first bad row fails the whole load, nothing is
returned half-loaded, and ``skip_bad_rows=True`` drops bad rows and counts them instead.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, Field

from shared.data.types import EVENT_TYPES, CatalogItem, Dataset, Interaction

if TYPE_CHECKING:
    import pandas as pd

CATEGORY_SEPARATOR = " > "
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".parquet.gz")
MAX_REPORTED = 10


class ItemRow(BaseModel):
    """One line of ``items``: a product of the catalog."""

    model_config = ConfigDict(extra="ignore")

    item_id: str = Field(min_length=1, description="unique id of the product")
    title: str = Field(min_length=1, description="the product's name, never empty")
    category_path: str | None = Field(
        None, description='path from the root, parts joined by ">", e.g. "home > kitchen > mug"'
    )
    price: float | None = Field(None, ge=0, description="unit price; empty = unknown (0.0)")
    available: bool | None = Field(
        None, description="true/false (also 1/0, yes/no); empty = available"
    )
    first_seen: datetime | None = Field(
        None, description="when the catalog first listed it: ISO 8601 or Unix seconds"
    )
    description: str | None = Field(None, description="free text")


class EventRow(BaseModel):
    """One line of ``events``: something a shopper did with an item."""

    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(min_length=1, description="the shopper, as the shop calls them")
    item_id: str = Field(min_length=1, description="an item_id of items")
    timestamp: datetime = Field(description="ISO 8601 (no zone = UTC) or Unix seconds")
    type: Literal["view", "add_to_cart", "purchase", "rating"] = Field(description="what happened")
    quantity: int | None = Field(None, ge=1, description="units; empty = 1")
    value: float | None = Field(None, description="e.g. the rating given")


assert set(get_args(EventRow.model_fields["type"].annotation)) == set(EVENT_TYPES)


class DataFormatError(ValueError):
    """The folder is not in the format; the message names file, line and column."""


@dataclass(frozen=True)
class RowError:
    """One bad row: where it is and what is wrong with it."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass
class LoadReport:
    """Rows read and rows skipped per file (skipped only with ``skip_bad_rows``)."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[RowError] = field(default_factory=list)

    def summary(self) -> str:
        read = ", ".join(f"{f}: {n} rows" for f, n in self.rows.items())
        if not any(self.skipped.values()):
            return f"{read}; no bad rows"
        skipped = ", ".join(f"{f}: {n}" for f, n in self.skipped.items() if n)
        shown = "; ".join(str(e) for e in self.examples[:3])
        return f"{read}; skipped bad rows ({skipped}), e.g. {shown}"


# ---- reading --------------------------------------------------------------------------------


def find_file(folder: Path, stem: str) -> Path:
    """The one ``stem.<suffix>`` in ``folder``; two spellings of the same table are an error."""
    found = [folder / f"{stem}{s}" for s in SUFFIXES if (folder / f"{stem}{s}").exists()]
    if not found:
        raise DataFormatError(
            f"{folder}: no {stem} file; expected one of "
            + ", ".join(f"{stem}{s}" for s in SUFFIXES)
        )
    if len(found) > 1:
        raise DataFormatError(f"{folder}: more than one {stem} file: {[p.name for p in found]}")
    return found[0]


def _read_table(path: Path) -> tuple[pd.DataFrame, bool]:
    """The table, every CSV cell as text ("" when empty); ``True`` when lines are CSV lines."""
    import pandas as pd

    name = path.name
    is_csv = name.endswith((".csv", ".csv.gz"))
    try:
        if is_csv:
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=False,
                compression="gzip" if name.endswith(".gz") else None,
            )
        elif name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                frame = pd.read_parquet(io.BytesIO(f.read()))
        else:
            frame = pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"{name}: cannot be read: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, is_csv


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    """The column kind of a model field's type: text, number, integer, boolean, timestamp,
    choice (with its values)."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    base = args[0] if get_origin(annotation) is not Literal and args else annotation
    if get_origin(base) is Literal:
        return "choice", tuple(str(v) for v in get_args(base))
    kinds = {str: "text", float: "number", int: "integer", bool: "boolean", datetime: "timestamp"}
    return kinds[base], ()


def _lower_bound(model: type[BaseModel], column: str) -> float | None:
    for rule in model.model_fields[column].metadata:
        if isinstance(rule, Ge):
            return float(rule.ge)  # type: ignore[arg-type]
    return None


@dataclass
class _Table:
    """One file being checked: its frame, which rows are still good, the errors so far."""

    name: str
    frame: pd.DataFrame
    csv_lines: bool
    good: Any  # a boolean pandas Series
    errors: list[RowError] = field(default_factory=list)
    bad_count: int = 0

    def line(self, position: int) -> int:
        # The header is line 1 of a CSV file; Parquet has no lines, so rows count from 1.
        return position + 2 if self.csv_lines else position + 1

    def flag(self, bad: Any, describe: Callable[[int], str]) -> None:
        """Mark ``bad`` rows (a boolean Series) and keep messages for the first few."""
        new = bad & self.good
        count = int(new.sum())
        if not count:
            return
        self.bad_count += count
        self.good = self.good & ~new
        for position in _positions(new, MAX_REPORTED - len(self.errors)):
            self.errors.append(RowError(self.name, self.line(position), describe(position)))


def _positions(mask: Any, limit: int) -> Iterator[int]:
    import numpy as np

    if limit <= 0:
        return iter(())
    return (int(p) for p in np.flatnonzero(mask.to_numpy())[:limit])


def _text(values: Any) -> Any:
    """Cells as stripped strings, missing values as ""."""
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _parse_timestamps(raw: Any) -> Any:
    """ISO 8601 (a missing zone is UTC) or Unix seconds; NaT where neither."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
    text = _text(raw)
    unix = text.str.fullmatch(r"-?\d+(\.\d+)?")
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    if unix.any():
        seconds = pd.to_numeric(text[unix], errors="coerce")
        out[unix] = pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")
    iso = ~unix & (text != "")
    if iso.any():
        out[iso] = pd.to_datetime(text[iso], format="ISO8601", utc=True, errors="coerce")
    return out


_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_NOT_A = {
    "number": "is not a number",
    "integer": "is not a whole number",
    "boolean": "is not true or false",
    "timestamp": "is not a date",
}


def _check_column(table: _Table, model: type[BaseModel], column: str) -> Any:
    """The column's values converted to its kind, with every bad cell flagged."""
    import numpy as np
    import pandas as pd

    info = model.model_fields[column]
    kind, choices = _kind(info.annotation)
    if column not in table.frame.columns:
        index = table.frame.index
        if kind in ("number", "integer"):
            return pd.Series(np.nan, index=index, dtype=float)
        return pd.Series([None] * len(index), index=index, dtype=object)
    raw = table.frame[column]
    text = _text(raw)
    empty = text == ""
    if info.is_required():
        table.flag(empty, lambda _p: f"{column} is empty")
    shown = text.to_numpy()

    def invalid(what: str) -> Callable[[int], str]:
        return lambda p: f'{column} "{shown[p]}" {what}'

    if kind == "text":
        return text
    if kind == "choice":
        table.flag(~empty & ~text.isin(choices), invalid("is not one of " + ", ".join(choices)))
        return text
    if kind == "boolean":
        lower = text.str.lower()
        table.flag(~empty & ~lower.isin(_TRUE + _FALSE), invalid(_NOT_A[kind]))
        return lower.isin(_TRUE).where(~empty, None)
    if kind == "timestamp":
        parsed = _parse_timestamps(raw)
        table.flag(~empty & parsed.isna(), invalid(_NOT_A[kind]))
        return parsed
    number = pd.to_numeric(text.where(~empty, None), errors="coerce")
    table.flag(~empty & (number.isna() | ~np.isfinite(number)), invalid(_NOT_A[kind]))
    if kind == "integer":
        table.flag(~empty & number.notna() & (number % 1 != 0), invalid(_NOT_A[kind]))
    bound = _lower_bound(model, column)
    if bound is not None:
        table.flag(~empty & (number < bound), invalid(f"is below {bound:g}"))
    return number


def _check_table(path: Path, model: type[BaseModel]) -> tuple[_Table, dict[str, Any]]:
    import pandas as pd

    frame, csv_lines = _read_table(path)
    missing = [c for c, info in model.model_fields.items() if info.is_required() and c not in frame]
    if missing:
        raise DataFormatError(
            f"{path.name}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(frame.columns) or 'none'}"
        )
    table = _Table(path.name, frame, csv_lines, pd.Series(True, index=frame.index))
    columns = {c: _check_column(table, model, c) for c in model.model_fields}
    return table, columns


def _fail_or_count(table: _Table, skip_bad_rows: bool, report: LoadReport) -> None:
    report.rows[table.name] = len(table.frame)
    report.skipped[table.name] = table.bad_count
    report.examples.extend(table.errors)
    if table.bad_count and not skip_bad_rows:
        more = table.bad_count - len(table.errors)
        lines = [str(e) for e in table.errors]
        if more > 0:
            lines.append(f"... and {more} more bad row(s) in {table.name}")
        raise DataFormatError(
            "\n".join(lines) + "\n(fix the rows, or pass --skip-bad-rows to drop and count them)"
        )


def load_folder(
    folder: Path | str, *, skip_bad_rows: bool = False, name: str | None = None
) -> tuple[Dataset, LoadReport]:
    """Read and check ``folder``; the Dataset is named ``name`` or after the folder.

    Raises DataFormatError on the first file with a bad row unless ``skip_bad_rows``; an
    event whose item is not in the catalog is a bad row, and so is a repeated item id (the
    first one wins when skipping). A missing file or required column always fails.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataFormatError(f"{root}: not a folder with an items and an events file")
    report = LoadReport()
    items_path, events_path = find_file(root, "items"), find_file(root, "events")
    items, icols = _checked_items(items_path, skip_bad_rows, report)
    ids = icols["item_id"]

    events, ecols = _check_table(events_path, EventRow)
    known = set(ids[items.good])
    event_items = ecols["item_id"]
    events.flag(
        ~event_items.isin(known),
        lambda p: f'item_id "{event_items.iloc[p]}" is not in {items_path.name}',
    )
    _fail_or_count(events, skip_bad_rows, report)

    dataset = Dataset(
        name or root.resolve().name,
        _catalog(items, icols),
        _interactions(events, ecols),
        notes={"source": str(root), "load": report.summary()},
    )
    return dataset, report


def _checked_items(
    path: Path, skip_bad_rows: bool, report: LoadReport
) -> tuple[_Table, dict[str, Any]]:
    """An items file checked row by row, a repeated item id being a bad row."""
    items, icols = _check_table(path, ItemRow)
    ids = icols["item_id"]
    candidates = ids.where(items.good)
    repeated = candidates.notna() & candidates.duplicated(keep="first")
    firsts = ids[items.good & ~repeated]
    first_line = {v: items.line(p) for p, v in zip(firsts.index, firsts, strict=True)}
    items.flag(
        repeated,
        lambda p: f'item_id "{ids.iloc[p]}" is repeated (first on line {first_line[ids.iloc[p]]})',
    )
    _fail_or_count(items, skip_bad_rows, report)
    return items, icols


def load_items(path: Path | str) -> dict[str, CatalogItem]:
    """One items file of the format on its own (a catalog change: new products, new titles),
    checked as ``load_folder`` checks it; raises DataFormatError on the first bad row."""
    table, cols = _checked_items(Path(path), False, LoadReport())
    return _catalog(table, cols)


def _catalog(table: _Table, cols: dict[str, Any]) -> dict[str, CatalogItem]:
    good = table.good.to_numpy()
    paths = cols["category_path"].astype(object).where(cols["category_path"].notna(), "")
    split = [
        tuple(part.strip() for part in str(p).split(">") if part.strip())
        for p in paths.to_numpy()[good]
    ]
    prices = cols["price"].astype(float).fillna(0.0).to_numpy()[good]
    available = cols["available"].astype(object).where(cols["available"].notna(), True)
    first = cols["first_seen"]
    first_seen = (
        [None if ts is None or ts != ts else ts.to_pydatetime() for ts in first.to_numpy()[good]]
        if hasattr(first, "dt")
        else [None] * int(good.sum())
    )
    descriptions = cols["description"].astype(object).where(cols["description"].notna(), "")
    rows = zip(
        cols["item_id"].to_numpy()[good],
        cols["title"].to_numpy()[good],
        split,
        prices,
        available.to_numpy()[good],
        first_seen,
        descriptions.to_numpy()[good],
        strict=True,
    )
    return {
        i: CatalogItem(i, t, c, round(float(p), 6), bool(a), f, str(d))
        for i, t, c, p, a, f, d in rows
    }


def _interactions(table: _Table, cols: dict[str, Any]) -> list[Interaction]:
    good = table.good.to_numpy()
    # datetime64[us] -> naive datetimes in one call; the zone is put back per object below.
    when = cols["timestamp"][good].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
    quantity = cols["quantity"].fillna(1).astype(int).to_numpy()[good].tolist()
    value = cols["value"].astype(object).where(cols["value"].notna(), None)
    return [
        Interaction(u, i, t.replace(tzinfo=UTC), e, q, v)
        for u, i, t, e, q, v in zip(
            cols["user_id"].to_numpy()[good].tolist(),
            cols["item_id"].to_numpy()[good].tolist(),
            when.tolist(),
            cols["type"].to_numpy()[good].tolist(),
            quantity,
            value.to_numpy()[good].tolist(),
            strict=True,
        )
    ]


# ---- writing --------------------------------------------------------------------------------


def _iso(ts: datetime | None) -> str:
    return "" if ts is None else ts.isoformat()


def write_folder(dataset: Dataset, out: Path | str, *, suffix: str = ".csv") -> Path:
    """Write ``dataset`` as ``out/items<suffix>`` and ``out/events<suffix>``.

    The files are written in a sibling temporary folder that replaces ``out`` only when both
    are complete, so an import that fails leaves no half-written folder behind.
    """
    import pandas as pd

    if suffix not in SUFFIXES:
        raise ValueError(f"suffix must be one of {SUFFIXES}")
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty folder")
    items = pd.DataFrame(
        {
            "item_id": [it.item_id for it in dataset.items.values()],
            "title": [it.title for it in dataset.items.values()],
            "category_path": [
                CATEGORY_SEPARATOR.join(it.category_path) for it in dataset.items.values()
            ],
            "price": [it.price for it in dataset.items.values()],
            "available": ["true" if it.available else "false" for it in dataset.items.values()],
            "first_seen": [_iso(it.first_seen) for it in dataset.items.values()],
            "description": [it.description for it in dataset.items.values()],
        }
    )
    log = dataset.interactions
    events = pd.DataFrame(
        {
            "user_id": [x.user_id for x in log],
            "item_id": [x.item_id for x in log],
            "timestamp": [x.timestamp.isoformat() for x in log],
            "type": [x.event_type for x in log],
            "quantity": [x.quantity for x in log],
            "value": ["" if x.value is None else repr(x.value) for x in log],
        }
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    for stem, frame in (("items", items), ("events", events)):
        path = staging / f"{stem}{suffix}"
        if suffix.startswith(".csv"):
            frame.to_csv(path, index=False)
        else:
            data = frame.to_parquet(index=False)
            path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    os.replace(staging, target)
    return target
