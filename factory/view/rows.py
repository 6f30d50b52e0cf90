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
    return query


def _text_of(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """A column as searchable text: strings as they are, chat turns as their contents joined."""
    import polars as pl

    if dtype == pl.String:
        return pl.col(name)
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        fields = {f.name: f.dtype for f in dtype.inner.fields}
        if fields.get("content") == pl.String:
            return pl.col(name).list.eval(pl.element().struct.field("content")).list.join("\n")
    return None


def filter_expr(query: RowQuery, schema: pl.Schema) -> pl.Expr | None:
    import polars as pl

    parts: list[pl.Expr] = []
    if query.q:
        needle = query.q.lower()
        texts = [e for e in (_text_of(c, t) for c, t in schema.items()) if e is not None]
        if texts:
            parts.append(pl.any_horizontal([e.str.to_lowercase().str.contains(needle, literal=True).fill_null(False)
                                            for e in texts]))
        else:
            parts.append(pl.lit(False))
    if query.col and query.val:
        text = _text_of(query.col, schema[query.col])
        column = text if text is not None else pl.col(query.col).cast(pl.String)
        if text is not None:
            parts.append(column.str.to_lowercase().str.contains(query.val.lower(), literal=True).fill_null(False))
        else:
            parts.append((column == query.val).fill_null(False))
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
    """One page of rows (with their row numbers in the version), filtered; no full load."""
    import polars as pl

    lf = version.scan()
    schema = lf.collect_schema()
    lf = lf.with_row_index(ROW_INDEX)
    expr = filter_expr(query, schema)
    if expr is not None:
        lf = lf.filter(expr)
        total = int(lf.select(pl.len()).collect().item())
    else:
        total = version.manifest.rows
    offset = (query.page - 1) * query.size
    df = lf.slice(offset, query.size).collect()
    indices = df[ROW_INDEX].to_list()
    return Page(rows=df.drop(ROW_INDEX).to_dicts(), indices=indices, offset=offset, total=total,
                columns=list(schema))


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
        if m.start() > pos:
            out.append(("text", "", text[pos:m.start()]))
        out.append(("code", m.group(1), m.group(2)))
        pos = m.end()
    if pos < len(text):
        out.append(("text", "", text[pos:]))
    return out


def pretty(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    return "∅" if value is None else str(value)
