"""Dataset stages that need no LLM (dedup, filters, format conversions): a whole-table function in,
a new version with lineage and counters out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from factory.store import DatasetVersion, InputRef, StageInfo, Store


def run_transform(store: Store, source: DatasetVersion, out_name: str, stage: StageInfo, config: dict[str, Any],
                  fn: Callable[[pl.DataFrame], tuple[pl.DataFrame, dict[str, int]]]) -> tuple[DatasetVersion, bool]:
    """Apply `fn` to `source`'s rows; returns (version, created). The same recipe on the same input is reused."""
    with store.writer(out_name, stage=stage, config=config,
                      inputs=[InputRef(name=source.name, version=source.version)]) as w:
        if w.exists:
            store.set_latest(out_name, w.version)
            return w.existing, False
        df, counters = fn(source.read())
        w.write(df)
        return w.commit(counters={"kept": df.height, **counters}), True
