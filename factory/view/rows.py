"""Paged, filtered reads of a version's rows, straight from its Parquet shards.

A page is a lazy scan with the filters pushed down and a slice of one page, so a page of a 1 M-row version
reads only the row groups it needs. Values are turned into what a template shows (short cells, chat turns,
text and code segments); escaping is the template's job, never done here by hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput

if TYPE_CHECKING:
    import polars as pl

    from factory.store import DatasetVersion

PAGE_SIZE = 50
MAX_PAGE = 10_000_000
ROW_INDEX = "__row"
_DIGITS = re.compile(r"^[0-9]{1,9}$")


@dataclass
class RowQuery:
    """What the rows table asks for: a page, a text search, one column filter and a numeric range."""

    page: int = 1
    q: str = ""
    col: str = ""
    val: str = ""
    score: str = ""
    lo: float | None = None
    hi: float | None = None
    size: int = PAGE_SIZE

    @property
    def filtered(self) -> bool:
        return bool(self.q or (self.col and self.val) or (self.score and (self.lo is not None or self.hi is not None)))

    def params(self, **change: Any) -> dict[str, Any]:
        """The query string of this query (with `change` applied), for links to other pages."""
        d = {"page": self.page, "q": self.q, "col": self.col, "val": self.val, "score": self.score,
             "lo": self.lo, "hi": self.hi, **change}
        return {k: v for k, v in d.items() if v not in (None, "")}


def parse_query(params: Any, schema: pl.Schema) -> RowQuery:
    """Validate request parameters against the version's columns; anything wrong is a BadInput (400)."""
    def number(key: str) -> float | None:
        raw = (params.get(key) or "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise BadInput(f"{key}={raw[:40]!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise BadInput(f"{key} must be a finite number")
        return value

    raw_page = (params.get("page") or "1").strip()
    if not _DIGITS.match(raw_page) or not 1 <= int(raw_page) <= MAX_PAGE:
        raise BadInput(f"page={raw_page[:40]!r}: a page is a whole number from 1 to {MAX_PAGE}")
    query = RowQuery(page=int(raw_page), q=(params.get("q") or "")[:500], col=params.get("col") or "",
                     val=(params.get("val") or "")[:500], score=params.get("score") or "",
                     lo=number("lo"), hi=number("hi"))
    for key in ("col", "score"):
        name = getattr(query, key)
        if name and name not in schema:
            raise BadInput(f"{key}={name[:60]!r}: no such column")
    if query.score and not schema[query.score].is_numeric():
        raise BadInput(f"score={query.score!r}: not a numeric column")
    if query.col and not filterable(schema[query.col]):
        raise BadInput(f"col={query.col[:60]!r}: a {schema[query.col]} column cannot be filtered (only text, chat, "
                       "numbers, booleans and dates)")
    return query


def filterable(dtype: pl.DataType) -> bool:
    """Whether the column filter can compare a column with a value: text and chat by content, the rest as text;
    lists, structs and binary have no text form to compare with (their cast fails)."""
    from factory.store.diff import has_text_form

    return is_chat_type(dtype) or has_text_form(dtype)


def _text_of(name: str, dtype: pl.DataType, needle: str) -> pl.Expr | None:
    """Whether a column holds `needle` (a case-insensitive literal): strings as they are, chat turns by content."""
    import polars as pl

    pattern = "(?i)" + re.escape(needle)
    if dtype == pl.String:
        return pl.col(name).str.contains(pattern).fill_null(False)
    if is_chat_type(dtype):
        return pl.col(name).list.eval(pl.element().struct.field("content").str.contains(pattern)).list.any() \
            .fill_null(False)
    return None


def is_chat_type(dtype: pl.DataType) -> bool:
    import polars as pl

    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        return {f.name: f.dtype for f in dtype.inner.fields}.get("content") == pl.String
    return False


def filter_expr(query: RowQuery, schema: pl.Schema) -> pl.Expr | None:
    import polars as pl

    parts: list[pl.Expr] = []
    if query.q:
        # text columns; chat columns only where there are none: `messages` repeats instruction and response
        # (docs/records.md), and searching both would double the cost of the scan
        names = [c for c, t in schema.items() if t == pl.String] or [c for c, t in schema.items() if is_chat_type(t)]
        hits = [_text_of(c, schema[c], query.q) for c in names]
        parts.append(pl.any_horizontal(hits) if hits else pl.lit(False))
    if query.col and query.val:
        hit = _text_of(query.col, schema[query.col], query.val)
        parts.append(hit if hit is not None else (pl.col(query.col).cast(pl.String) == query.val).fill_null(False))
    if query.score and query.lo is not None:
        parts.append(pl.col(query.score) >= query.lo)
    if query.score and query.hi is not None:
        parts.append(pl.col(query.score) <= query.hi)
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


@dataclass
class Page:
    rows: list[dict[str, Any]]
    indices: list[int]
    offset: int
    total: int  # rows matching the query
    columns: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def read_page(version: DatasetVersion, query: RowQuery) -> Page:
    """One page of rows (with their row numbers in the version), filtered; no full load.

    Unfiltered: a slice, which reads only the row groups it needs. Filtered: first the numbers of the matching
    rows, from a scan of the filter's columns alone, then only the page's rows, fetched in contiguous runs.
    """

    schema = version.scan().collect_schema()
    offset = (query.page - 1) * query.size
    expr = filter_expr(query, schema)
    # fresh scans each time: a LazyFrame that has resolved its schema loses the slice pushdown (polars 2.1),
    # and a page of a 1 M-row version then decodes whole row groups
    if expr is None:
        df = version.scan().with_row_index(ROW_INDEX).slice(offset, query.size).collect()
        total = version.manifest.rows
    else:
        matches = version.scan().with_row_index(ROW_INDEX).filter(expr).select(ROW_INDEX).collect()[ROW_INDEX]
        total = matches.len()
        df = _fetch(version, matches.slice(offset, query.size).to_list(), schema)
    return Page(rows=df.drop(ROW_INDEX).to_dicts(), indices=df[ROW_INDEX].to_list(), offset=offset, total=total,
                columns=list(schema))


RUN_GAP = 4096


def _fetch(version: DatasetVersion, indices: list[int], schema: pl.Schema) -> pl.DataFrame:
    """The rows at sorted `indices`: one slice per run of nearby rows, so sparse matches do not decode it all."""
    import polars as pl

    runs: list[list[int]] = []
    for i in indices:
        if runs and i - runs[-1][-1] <= RUN_GAP:
            runs[-1].append(i)
        else:
            runs.append([i])
    frames = [version.scan().with_row_index(ROW_INDEX).slice(run[0], run[-1] - run[0] + 1)
              .filter(pl.col(ROW_INDEX).is_in(run)).collect() for run in runs]
    if not frames:
        return pl.DataFrame(schema={ROW_INDEX: pl.UInt32, **dict(schema)})
    return pl.concat(frames)


def read_row(version: DatasetVersion, index: int) -> dict[str, Any]:
    if not 0 <= index < version.manifest.rows:
        raise LookupError(f"row {index} is outside 0..{version.manifest.rows - 1}")
    rows = version.scan().slice(index, 1).collect().to_dicts()
    if not rows:
        raise LookupError(f"row {index} not found")
    return rows[0]


# -- what templates show ------------------------------------------------------------------------------
def is_chat(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value))


def cell(value: Any, width: int = 160) -> str:
    """A table cell: one short line of plain text."""
    if is_chat(value):
        text = " | ".join(f"{m.get('role')}: {m.get('content')}" for m in value)
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    elif value is None:
        return "∅"
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


_FENCE = re.compile(r"```([\w+-]*)\n(.*?)(?:```|\Z)", re.S)


def segments(text: str) -> list[tuple[str, str, str]]:
    """Markdown text split into ("text", "", body) and ("code", language, body) parts: fenced code is shown as
    code, the rest as pre-wrapped text; both are escaped by the template, so nothing in a row becomes markup."""
    out, pos = [], 0
    for m in _FENCE.finditer(text):
        if text[pos:m.start()].strip():
            out.append(("text", "", text[pos:m.start()].strip("\n")))
        out.append(("code", m.group(1), m.group(2)))
        pos = m.end()
    if text[pos:].strip() or not out:
        out.append(("text", "", text[pos:].strip("\n")))
    return out


def pretty(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return "∅" if value is None else str(value)
