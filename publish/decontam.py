"""The decontamination gate: n-gram overlap between a dataset's rows and benchmark prompts.

Words are lowercased with punctuation stripped; a row is contaminated when any of its text fields shares an
n-gram (13 words by default, as in GPT-3's and the Open LLM Leaderboard's contamination checks) with any
benchmark prompt. Above `max_fraction` of rows the publish is refused unless `allow` is set; either way the
report goes into the dataset card.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.config import StrictModel
from factory.errors import BadInput, FactoryError
from factory.store import DatasetVersion, Store

_WORD = re.compile(r"[^\W_]+")
# provenance columns hold ids and model names, not text a benchmark could leak into
SKIP_COLUMNS = {"id", "source", "scheme", "model", "seed_id", "judge_model", "judge_error", "error", "category",
                "task", "template_type", "benchmark"}
PROMPT_COLUMNS = ("prompt", "question", "turns", "instruction", "input", "inputs", "text", "problem")
SHOWN = 10


class DecontamConfig(StrictModel):
    """`--benchmarks` / `--ngram` / `--max-contamination` / `--allow-contamination`."""

    benchmarks: list[str] = Field(default_factory=list, description="files, seeds:NAME, store refs or Hub ids")
    ngram: int = Field(13, ge=3, le=64, description="words per n-gram")
    max_fraction: float = Field(0.0, ge=0.0, le=1.0, description="largest share of overlapping rows allowed")
    allow: bool = Field(False, description="publish even above max_fraction (the card says so)")


@dataclass
class Hit:
    row: str
    benchmark: str
    ngram: str


@dataclass
class DecontamReport:
    checked: bool
    ngram: int = 13
    rows: int = 0
    prompts: int = 0
    sources: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)  # one per contaminated row
    max_fraction: float = 0.0
    allowed: bool = False

    @property
    def contaminated(self) -> int:
        return len(self.hits)

    @property
    def fraction(self) -> float:
        return self.contaminated / self.rows if self.rows else 0.0

    @property
    def over(self) -> bool:
        return self.checked and self.contaminated > 0 and self.fraction > self.max_fraction

    def summary(self) -> str:
        if not self.checked:
            return "decontamination: not run (no --benchmarks given)"
        head = (f"decontamination: {self.contaminated} of {self.rows} rows ({self.fraction:.1%}) share a "
                f"{self.ngram}-gram with {self.prompts} benchmark prompts")
        if self.hits:
            ids = ", ".join(h.row for h in self.hits[:SHOWN]) + (" ..." if len(self.hits) > SHOWN else "")
            head += f" ({ids})"
        return head

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "ngram": self.ngram, "rows": self.rows, "prompts": self.prompts,
                "sources": self.sources, "contaminated": self.contaminated, "fraction": round(self.fraction, 6),
                "max_fraction": self.max_fraction, "allowed": self.allowed and self.over,
                "hits": [asdict(h) for h in self.hits]}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> Iterator[str]:
    w = words(text)
    for i in range(len(w) - n + 1):
        yield " ".join(w[i:i + n])


def strings(value: Any) -> Iterator[str]:
    """Every string inside a cell: plain, in lists, in message structs."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)


def _frame_rows(source: str, store: Store | None):
    """Rows of a benchmark source: a store ref if the store has it, else a file, seeds:NAME or a Hub id."""
    from factory.data import resolve_seed
    from factory.store.sources import read_source

    if store is not None and not Path(source).exists() and not source.startswith("seeds:"):
        try:
            return store.resolve(source).read()
        except FactoryError:
            pass
    return read_source(resolve_seed(source)).data


def load_prompts(sources: list[str], store: Store | None = None) -> list[tuple[str, str]]:
    """(prompt id, text) for every benchmark prompt; text from the usual prompt columns (see PROMPT_COLUMNS)."""
    out: list[tuple[str, str]] = []
    for source in sources:
        df = _frame_rows(source, store)
        cols = [c for c in PROMPT_COLUMNS if c in df.columns] or [c for c in df.columns if c not in SKIP_COLUMNS]
        if not cols:
            raise BadInput(f"benchmark source {source!r} has no text columns")
        label = Path(source).stem if Path(source).exists() else source
        for i, row in enumerate(df.iter_rows(named=True)):
            ident = str(row.get("id") or row.get("question_id") or f"{label}[{i}]")
            out.append((ident, "\n".join(s for c in cols for s in strings(row.get(c)))))
    return out


def find_hits(rows: Iterable[tuple[str, list[str]]], prompts: list[tuple[str, str]], n: int) -> list[Hit]:
    """The first benchmark n-gram each row shares, for every row that shares one."""
    index: dict[str, str] = {}
    for ident, text in prompts:
        for g in ngrams(text, n):
            index.setdefault(g, ident)
    hits = []
    for row_id, texts in rows:
        hit = next((Hit(row_id, index[g], g) for t in texts for g in ngrams(t, n) if g in index), None)
        if hit is not None:
            hits.append(hit)
    return hits


def _version_rows(version: DatasetVersion) -> Iterator[tuple[str, list[str]]]:
    cols = [c for c in version.manifest.columns if c not in SKIP_COLUMNS]
    i = 0
    for frame in version.scan().collect().iter_slices(10_000):
        for row in frame.iter_rows(named=True):
            yield str(row.get("id") or f"row {i}"), [s for c in cols for s in strings(row.get(c))]
            i += 1


def check_version(version: DatasetVersion, config: DecontamConfig, store: Store | None = None) -> DecontamReport:
    """Run the gate over a stored version (no benchmarks: a report that says it was not run)."""
    if not config.benchmarks:
        return DecontamReport(checked=False, ngram=config.ngram, rows=version.manifest.rows)
    prompts = load_prompts(config.benchmarks, store)
    hits = find_hits(_version_rows(version), prompts, config.ngram)
    return DecontamReport(checked=True, ngram=config.ngram, rows=version.manifest.rows, prompts=len(prompts),
                          sources=list(config.benchmarks), hits=hits, max_fraction=config.max_fraction,
                          allowed=config.allow)


def enforce(report: DecontamReport) -> None:
    """Refuse (one line, exit 1) when the report is over its threshold and the user did not allow it."""
    if report.over and not report.allowed:
        raise FactoryError(f"refusing to publish: {report.summary()}; over --max-contamination "
                           f"{report.max_fraction:g}; pass --allow-contamination to publish anyway")
