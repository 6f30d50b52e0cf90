"""Row filters usable after any scheme: length, language and refusals. Each drop is counted by reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from factory.config import StrictModel
from factory.errors import BadInput
from factory.pipeline.stage import Stage
from factory.store.sources import require_types

if TYPE_CHECKING:
    import polars as pl

# Phrases that mark a teacher declining or hedging as a model rather than answering.
REFUSALS = [
    r"\bas an ai\b", r"\bas a language model\b", r"\bi(?:'m| am) (?:sorry|unable|not able)\b",
    r"\bi can(?:not|'t) (?:help|assist|provide|answer|comply)\b", r"\bi (?:won't|will not) (?:help|provide)\b",
    r"\bi do(?:n't| not) have (?:access|the ability|personal)\b", r"\bmy (?:knowledge )?cutoff\b",
]
_REFUSAL = "(?i)" + "|".join(REFUSALS)

# A few very frequent words per language: enough to tell English from its neighbours in a paragraph.
STOPWORDS = {
    "en": "the and of to is in that it for with as was on are this be by not or have from",
    "fr": "le la les et des est une un que pour dans pas sur qui il elle avec au du ce",
    "es": "el la los las y de que es en un una por con para no se del al lo",
    "de": "der die das und ist nicht ein eine zu den mit von sich auf für im dem des",
    "it": "il la che di e un una per non sono con del della le gli nel si al",
    "pt": "o a os as e de que um uma para com não no na do da em se por",
}


def detect_language(texts: pl.Series) -> pl.Series:
    """The language whose stop words are most frequent in each text ('' when none match)."""
    import numpy as np
    import polars as pl

    words = texts.fill_null("").str.to_lowercase().str.extract_all(r"[a-zà-ÿ]+").alias("w").to_frame()
    scores = words.select([pl.col("w").list.eval(pl.element().is_in(ws.split())).list.sum().alias(lang)
                           for lang, ws in STOPWORDS.items()]).to_numpy()
    best = np.array(list(STOPWORDS), dtype=object)[scores.argmax(axis=1)]
    best[scores.max(axis=1) == 0] = ""
    return pl.Series(best, dtype=pl.String)


def apply_filters(df: pl.DataFrame, column: str, min_words: int | None, max_words: int | None,
                  languages: list[str] | None, refusals: bool) -> tuple[pl.DataFrame, dict[str, int]]:
    import polars as pl

    if column not in df.columns:
        raise BadInput(f"--column {column!r}: no such column (have: {', '.join(df.columns)})")
    require_types(df.schema, {column: "str"}, "--column")  # words of a number or a list would be made up
    unknown = [lang for lang in languages or [] if lang not in STOPWORDS]
    if unknown:
        raise BadInput(f"--language {unknown[0]!r}: not one of {', '.join(STOPWORDS)}")
    counts: dict[str, int] = {}
    n_words = pl.col(column).fill_null("").str.count_matches(r"\S+")
    checks = []
    if min_words is not None:
        checks.append(("too_short", n_words < min_words))
    if max_words is not None:
        checks.append(("too_long", n_words > max_words))
    if refusals:
        checks.append(("refusal", pl.col(column).fill_null("").str.contains(_REFUSAL)))
    if languages:
        checks.append(("wrong_language", ~pl.lit(detect_language(df[column])).is_in(languages)))
    if "error" in df.columns:
        checks.append(("failed_call", pl.col("error").is_not_null()))
    flags = df.select([expr.alias(name) for name, expr in checks]) if checks else pl.DataFrame()
    drop = pl.Series([False] * df.height)
    for name in flags.columns:  # a row is counted under the first reason that drops it
        hit = flags[name] & ~drop
        counts[name] = int(hit.sum())
        drop = drop | flags[name]
    return df.filter(~drop), {"dropped": int(drop.sum()), **counts}



class FilterConfig(StrictModel):
    column: str = Field("response", description="The text column the filters look at.")
    min_words: int | None = Field(None, ge=0, description="Drop rows with fewer words.")
    max_words: int | None = Field(None, ge=1, description="Drop rows with more words.")
    languages: list[str] = Field(
        default_factory=list, description="Keep only rows in this language (en, fr, es, de, it, pt; repeatable).")
    refusals: bool = Field(False, description="Drop answers where the model declines or hedges.")

    @model_validator(mode="after")
    def _range(self) -> FilterConfig:
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) is more than max_words ({self.max_words})")
        return self

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        unknown = [lang for lang in value if lang not in STOPWORDS]
        if unknown:
            raise ValueError(f"--language {unknown[0]!r}: not one of {', '.join(STOPWORDS)}")
        return sorted(value)  # the order they were given in does not change what is kept


class Filter(Stage):
    """Drop rows by length, language or refusal (and rows whose call failed), counting each reason."""

    kind = "filter"
    name = "filter"
    whole_table = True
    Config = FilterConfig
    config: FilterConfig

    def process_table(self, df: pl.DataFrame) -> pl.DataFrame:
        c = self.config
        out, counts = apply_filters(df, c.column, c.min_words, c.max_words, c.languages, c.refusals)
        self.counters.update(counts)
        return out
