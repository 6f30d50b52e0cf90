"""Write a dataset version out as one JSONL, Parquet or CSV file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from factory.errors import BadInput
from factory.store.store import DatasetVersion


def export_version(version: DatasetVersion, fmt: str, out: Path) -> int:
    """Write to a temp file beside `out` and rename, so a failed export never leaves half a file."""
    out = Path(out)
    if out.is_dir():
        raise BadInput(f"-o {out}: is a directory; give a file path")
    out.parent.mkdir(parents=True, exist_ok=True)
    df = version.read()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if fmt == "jsonl":
            df.write_ndjson(tmp)
        elif fmt == "parquet":
            df.write_parquet(tmp, compression="zstd")
        elif fmt == "csv":
            flat = df.with_columns(
                pl.col(c).map_elements(lambda v: json.dumps(_plain(v), ensure_ascii=False), return_dtype=pl.String)
                for c, t in df.schema.items() if t.is_nested()
            )
            flat.write_csv(tmp)
        else:
            raise BadInput(f"unknown export format {fmt!r}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return df.height


def _plain(value: object) -> object:
    return value.to_list() if isinstance(value, pl.Series) else value
