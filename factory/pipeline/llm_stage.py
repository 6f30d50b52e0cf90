"""Run an LLM over the rows of a dataset version and store the answers as a new version.

This is the loop that schemes, judges and `factory generate` share. Rows stream in from the input's
Parquet shards, requests stream to the LLM layer, answers come back in any order and are put back in
input order through a small reorder buffer, then written to the store in chunks: memory holds only the
rows in flight. A crash or a budget stop writes no version, but every answer is already in the response
cache, so the rerun pays only for what is missing. A run whose rows partly failed is stored with the
failures kept (an `error` column, counted); rerunning the same command retries just those rows and
replaces the version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from factory.llm.runner import LLM, run_sync
from factory.llm.types import ChatRequest, Completion
from factory.store import DatasetVersion, InputRef, StageInfo, Store

log = logging.getLogger(__name__)
MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
WRITE_ROWS = 2000


@dataclass
class LLMStage:
    """One LLM pass over a dataset: how to ask (`request`) and what to keep (`merge`; None drops the row)."""

    stage: StageInfo
    config: dict[str, Any]
    request: Callable[[dict[str, Any]], ChatRequest]
    merge: Callable[[dict[str, Any], Completion], dict[str, Any] | None]
    columns: dict[str, pl.DataType] = field(default_factory=dict)  # the columns `merge` adds
    prompts: dict[str, str] = field(default_factory=dict)


@dataclass
class StageResult:
    version: DatasetVersion
    reused: bool  # the same recipe was already stored complete: nothing was sent


def run_llm_stage(store: Store, llm: LLM, source: DatasetVersion, out_name: str, spec: LLMStage,
                  limit: int | None = None) -> StageResult:
    config = {**spec.config, "llm": llm.spec, "limit": limit}
    writer = store.writer(out_name, stage=spec.stage, config=config,
                          inputs=[InputRef(name=source.name, version=source.version)], prompts=spec.prompts)
    existing = writer.existing
    if existing is not None and not existing.manifest.counters.get("failed") and not llm.settings.refresh:
        store.set_latest(out_name, existing.version)
        return StageResult(existing, reused=True)
    total = source.manifest.rows if limit is None else min(limit, source.manifest.rows)
    schema = {**source.scan().collect_schema(), **spec.columns}
    with writer:
        counters = run_sync(_run(llm, source, spec, writer, schema, limit, total))
        version = writer.commit(counters=counters, cost=llm.stats.cost(), replace=existing is not None,
                                extra={"llm": {"spec": llm.spec, "retries": llm.stats.retries}})
    return StageResult(version, reused=False)


def _rows(source: DatasetVersion, limit: int | None) -> Iterator[dict[str, Any]]:
    lf = source.scan() if limit is None else source.scan().head(limit)
    for batch in lf.collect_batches() if hasattr(lf, "collect_batches") else [lf.collect()]:
        yield from batch.iter_rows(named=True)


async def _run(llm: LLM, source: DatasetVersion, spec: LLMStage, writer, schema: dict[str, Any],
               limit: int | None, total: int) -> dict[str, int]:
    waiting: dict[int, dict[str, Any]] = {}  # input rows whose answer has not come back yet
    done: dict[int, Completion] = {}
    counters = {"kept": 0, "dropped": 0, "failed": 0}
    out: list[dict[str, Any]] = []
    next_row = 0

    def requests() -> Iterator[ChatRequest]:
        for i, row in enumerate(_rows(source, limit)):
            waiting[i] = row
            yield spec.request(row)

    def flush() -> None:
        if out:
            writer.write(pl.DataFrame(out, schema=schema, strict=False))
            out.clear()

    try:
        async for i, completion in llm.stream(requests(), total=total):
            done[i] = completion
            while next_row in done:
                completion = done.pop(next_row)
                merged = spec.merge(waiting.pop(next_row), completion)
                next_row += 1
                if completion.error is not None:
                    counters["failed"] += 1
                if merged is None:
                    counters["dropped"] += 1
                    continue
                counters["kept"] += 1
                out.append(merged)
                if len(out) >= WRITE_ROWS:
                    flush()
        flush()
    finally:
        await llm.aclose()
    return counters


def user_turn(row: dict[str, Any]) -> str:
    """The user message of an SFT row: instruction, then its input after a blank line (docs/records.md)."""
    instruction = (row.get("instruction") or "").strip()
    extra = (row.get("input") or row.get("context") or "").strip()
    return f"{instruction}\n\n{extra}" if extra else instruction

