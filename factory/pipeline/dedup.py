"""Dedup stages, usable after any scheme: exact (normalised text hash) and near (MinHash LSH)."""

from __future__ import annotations

import polars as pl

from factory.errors import BadInput
from factory.pipeline.minhash import near_duplicates, normalized
from factory.store import StageInfo

EXACT = StageInfo(kind="filter", name="dedup-exact", version="1")
NEAR = StageInfo(kind="filter", name="dedup-near", version="1")
SEMANTIC = StageInfo(kind="filter", name="dedup-semantic", version="1")


def default_columns(columns: list[str]) -> list[str]:
    """What identifies a row's content: the prompt side of SFT data, else whatever text there is."""
    for choice in (["instruction", "input"], ["instruction"], ["prompt"], ["text"]):
        if all(c in columns for c in choice):
            return choice
    raise BadInput(f"cannot tell which columns to compare (have: {', '.join(columns)}); pass --columns")


def text_of(df: pl.DataFrame, columns: list[str]) -> pl.Series:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BadInput(f"--columns: no column {missing[0]!r} (have: {', '.join(df.columns)})")
    return df.select(pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in columns],
                                   separator="\n").alias("text"))["text"]


def dedup_exact(df: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    key = text_of(df, columns).to_frame().select(normalized(pl.col("text")).hash(seed=0))
    keep = key.to_series().is_first_distinct()
    return df.filter(keep), {"dropped": int((~keep).sum()), "exact_duplicates": int((~keep).sum())}


def dedup_near(df: pl.DataFrame, columns: list[str], threshold: float, num_perm: int, shingle: int
               ) -> tuple[pl.DataFrame, dict[str, int]]:
    if not 0 < threshold <= 1:
        raise BadInput(f"--threshold must be in (0, 1], got {threshold}")
    exact, counts = dedup_exact(df, columns)  # exact copies first: cheaper, and they are near copies too
    drop = near_duplicates(text_of(exact, columns), threshold, num_perm, shingle)
    near = int(drop.sum())
    return exact.filter(pl.Series(~drop)), {"dropped": counts["dropped"] + near,
                                            "exact_duplicates": counts["exact_duplicates"], "near_duplicates": near}


def dedup_semantic(df: pl.DataFrame, columns: list[str], threshold: float, model: str | None
                   ) -> tuple[pl.DataFrame, dict[str, int]]:
    from factory.pipeline.semantic import embed, semantic_duplicates

    exact, counts = dedup_exact(df, columns)
    drop = semantic_duplicates(embed(text_of(exact, columns).to_list(), model), threshold)
    semantic = int(drop.sum())
    return exact.filter(pl.Series(~drop)), {"dropped": counts["dropped"] + semantic,
                                            "exact_duplicates": counts["exact_duplicates"],
                                            "semantic_duplicates": semantic}
