"""Compare two dataset versions: schema changes and rows added, removed, changed."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from factory.errors import BadInput


@dataclass
class Diff:
    rows_old: int
    rows_new: int
    key: str | None
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    types_changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    types_old: dict[str, str] = field(default_factory=dict)
    types_new: dict[str, str] = field(default_factory=dict)


def _row_hashes(df: pl.DataFrame, columns: list[str]) -> pl.Series:
    """A content hash per row over `columns` (nested values included); same seed, same hash across frames."""
    if not columns:
        return pl.Series("h", [0] * df.height, dtype=pl.UInt64)
    return df.select(columns).hash_rows(seed=0).alias("h")


def has_text_form(dtype: pl.DataType) -> bool:
    """Whether a column's values cast to text (to match or compare them): lists, structs and binary do not."""
    return not (dtype.is_nested() or dtype in (pl.Binary, pl.Object))


def _usable_key(old: pl.DataFrame, new: pl.DataFrame, key: str) -> str | None:
    """Why `key` cannot match rows (None when it can): rows are matched on the key's text, one to one. A repeated
    key would join every copy with every other (n² rows: a constant column over a million rows never ends)."""
    for side, df in (("old", old), ("new", new)):
        dtype = df.schema[key]
        if not has_text_form(dtype):
            return f"a {dtype} column cannot be a key"
        if df[key].cast(pl.String).n_unique() != df.height:
            return f"values repeat in the {side} version; a key names one row"
    return None


def diff_versions(old: pl.DataFrame, new: pl.DataFrame, key: str | None = None) -> Diff:
    t_old = {c: str(t) for c, t in old.schema.items()}
    t_new = {c: str(t) for c, t in new.schema.items()}
    if key is None and "id" in t_old and "id" in t_new and _usable_key(old, new, "id") is None:
        key = "id"
    elif key is not None:
        for side, types in (("old", t_old), ("new", t_new)):
            if key not in types:
                raise BadInput(f"--key {key}: no such column in the {side} version")
        problem = _usable_key(old, new, key)
        if problem:
            raise BadInput(f"--key {key}: {problem}")
    d = Diff(rows_old=old.height, rows_new=new.height, key=key, types_old=t_old, types_new=t_new,
             columns_added=[c for c in t_new if c not in t_old], columns_removed=[c for c in t_old if c not in t_new],
             types_changed={c: (t_old[c], t_new[c]) for c in t_old if c in t_new and t_old[c] != t_new[c]})
    shared = [c for c in t_old if c in t_new and c not in d.types_changed and c != key]
    h_old, h_new = _row_hashes(old, shared), _row_hashes(new, shared)
    if key:
        a = pl.DataFrame({"k": old[key].cast(pl.String), "h": h_old})
        b = pl.DataFrame({"k": new[key].cast(pl.String), "h": h_new})
        joined = a.join(b, on="k", how="full", coalesce=True, suffix="_new")
        d.removed = joined.filter(pl.col("h_new").is_null()).height
        d.added = joined.filter(pl.col("h").is_null()).height
        both = joined.filter(pl.col("h").is_not_null() & pl.col("h_new").is_not_null())
        d.changed = both.filter(pl.col("h") != pl.col("h_new")).height
        d.unchanged = both.height - d.changed
    else:  # multiset difference of row contents
        ca = pl.DataFrame({"h": h_old}).group_by("h").len()
        cb = pl.DataFrame({"h": h_new}).group_by("h").len()
        j = ca.join(cb, on="h", how="full", coalesce=True, suffix="_new").fill_null(0)
        j = j.with_columns(pl.col("len", "len_new").cast(pl.Int64))  # counts are u32: 0 - 1 would wrap around
        d.removed = int((j["len"] - j["len_new"]).clip(lower_bound=0).sum())
        d.added = int((j["len_new"] - j["len"]).clip(lower_bound=0).sum())
        d.unchanged = int(j.select(pl.min_horizontal("len", "len_new")).to_series().sum())
    return d
