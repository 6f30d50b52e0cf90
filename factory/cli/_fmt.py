"""Small text-output helpers shared by the CLI modules."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain left-aligned table; the last column is not padded."""
    cells = [[str(h) for h in headers], *[[("" if c is None else str(c)) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    last = len(widths) - 1
    lines = ["  ".join(c if i == last else c.ljust(widths[i]) for i, c in enumerate(r)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def short(text: object, width: int = 60) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= width else s[: width - 1] + "…"


def when(iso: str) -> str:
    """'2026-11-26T12:34:56.789Z' -> '2026-11-26 12:34'."""
    return iso[:16].replace("T", " ")
