"""Dedup stages, usable after any scheme: exact (normalised text hash), near (MinHash LSH) and semantic
(sentence embeddings). Whole-table stages: each keeps the first row of every group of duplicates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from factory.config import StrictModel
from factory.errors import BadInput
from factory.pipeline.stage import Stage
from factory.records import Paper

if TYPE_CHECKING:
    import polars as pl

# What `model` says when the installed all-MiniLM-L6-v2 (factory.pipeline.semantic.default_model) is used.
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def default_columns(columns: list[str]) -> list[str]:
    """What identifies a row's content: the prompt side of SFT data, else whatever text there is."""
    for choice in (["instruction", "input"], ["instruction"], ["prompt"], ["text"]):
        if all(c in columns for c in choice):
            return choice
    raise BadInput(f"cannot tell which columns to compare (have: {', '.join(columns)}); pass --columns")


def text_of(df: pl.DataFrame, columns: list[str]) -> pl.Series:
    import polars as pl

    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BadInput(f"--columns: no column {missing[0]!r} (have: {', '.join(df.columns)})")
    return df.select(pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in columns],
                                   separator="\n").alias("text"))["text"]


def dedup_exact(df: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    import polars as pl

    from factory.pipeline.minhash import normalized

    key = text_of(df, columns).to_frame().select(normalized(pl.col("text")).hash(seed=0))
    keep = key.to_series().is_first_distinct()
    return df.filter(keep), {"dropped": int((~keep).sum()), "exact_duplicates": int((~keep).sum())}


def dedup_near(df: pl.DataFrame, columns: list[str], threshold: float, num_perm: int, shingle: int,
               ray: dict[str, Any] | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """`ray` (`address`, `workers`, `block_rows`): find the near copies with Ray Data (factory/pipeline/ray_dedup.py),
    the same rows as locally."""
    import polars as pl

    from factory.pipeline.minhash import near_duplicates

    if not 0 < threshold <= 1:
        raise BadInput(f"--threshold must be in (0, 1], got {threshold}")
    exact, counts = dedup_exact(df, columns)  # exact copies first: cheaper, and they are near copies too
    if ray is None:
        drop = near_duplicates(text_of(exact, columns), threshold, num_perm, shingle)
    else:
        from factory.pipeline import ray_exec
        from factory.pipeline.ray_dedup import near_duplicates_ray

        texts = text_of(exact, columns).to_list()
        blocks = -(-len(texts) // ray["block_rows"]) if ray.get("block_rows") else 4 * ray["workers"]
        with ray_exec.session(ray["address"], ray["workers"]):
            drop = near_duplicates_ray(texts, threshold, num_perm, shingle, blocks=max(1, blocks),
                                       parts=4 * ray["workers"])
    near = int(drop.sum())
    return exact.filter(pl.Series(~drop)), {"dropped": counts["dropped"] + near,
                                            "exact_duplicates": counts["exact_duplicates"], "near_duplicates": near}


def dedup_semantic(df: pl.DataFrame, columns: list[str], threshold: float, model: str | None
                   ) -> tuple[pl.DataFrame, dict[str, int]]:
    import polars as pl

    from factory.pipeline.semantic import embed, semantic_duplicates

    exact, counts = dedup_exact(df, columns)
    drop = semantic_duplicates(embed(text_of(exact, columns).to_list(), model), threshold)
    semantic = int(drop.sum())
    return exact.filter(pl.Series(~drop)), {"dropped": counts["dropped"] + semantic,
                                            "exact_duplicates": counts["exact_duplicates"],
                                            "semantic_duplicates": semantic}


class DedupConfig(StrictModel):
    columns: list[str] | None = Field(
        None, description="Columns to compare (default: instruction,input; else prompt or text).")


class NearConfig(DedupConfig):
    threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard similarity of near duplicates.")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations.")
    shingle: int = Field(3, ge=1, description="Words per shingle.")


class SemanticConfig(DedupConfig):
    threshold: float = Field(0.92, gt=0, le=1, description="Cosine similarity of semantic duplicates.")
    model: str = Field(DEFAULT_EMBEDDING_MODEL, description="Sentence-embedding model (a path or Hub id).")


class _Dedup(Stage):
    kind = "filter"
    whole_table = True
    Config = DedupConfig
    config: DedupConfig

    def bind(self, columns: list[str]) -> None:
        if self.config.columns is None:
            self.config = self.config.model_copy(update={"columns": default_columns(columns)})

    def process_table(self, df: pl.DataFrame) -> pl.DataFrame:
        out, counts = self.dedup(df, self.config.columns or default_columns(df.columns))
        self.counters.update(counts)
        return out

    def dedup(self, df: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
        raise NotImplementedError


class DedupExact(_Dedup):
    """Drop rows whose compared text is the same after normalisation (lower case, no punctuation, spaces)."""

    name = "dedup-exact"

    def dedup(self, df: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
        return dedup_exact(df, columns)


class DedupNear(_Dedup):
    """Drop near duplicates: MinHash LSH over word shingles estimates Jaccard similarity."""

    name = "dedup-near"
    paper = Paper(title="On the resemblance and containment of documents",
                  url="https://doi.org/10.1109/SEQUEN.1997.666900", authors="Broder", year=1997)
    Config = NearConfig
    config: NearConfig
    ray: dict[str, Any] | None = None  # where it runs, not what it makes: not part of the config (nor the version id)

    def dedup(self, df: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
        c = self.config
        return dedup_near(df, columns, c.threshold, c.num_perm, c.shingle, ray=self.ray)


class DedupSemantic(_Dedup):
    """Drop rows whose sentence embeddings are nearly parallel, whatever their words."""

    name = "dedup-semantic"
    paper = Paper(title="SemDeDup: Data-efficient learning at web-scale through semantic deduplication",
                  url="https://arxiv.org/abs/2303.09540", authors="Abbas et al.", year=2023)
    Config = SemanticConfig
    config: SemanticConfig

    def dedup(self, df: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
        model: Any = None if self.config.model == DEFAULT_EMBEDDING_MODEL else self.config.model
        return dedup_semantic(df, columns, self.config.threshold, model)
