"""Write a dataset version out as one JSONL, Parquet or CSV file."""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import polars as pl

from factory.errors import BadInput
from factory.store.store import DatasetVersion


def export_version(version: DatasetVersion, fmt: str, out: Path | str) -> int:
    """Write to a temp file beside `out` and rename, so a failed export never leaves half a file.

    `-` is stdout; a target that is not a plain file (`/dev/stdout`, a FIFO, a symlink) is written into, since a
    rename would replace the device or link itself with a regular file."""
    if fmt not in _WRITERS:
        raise BadInput(f"unknown export format {fmt!r}")
    df = version.read()
    if not df.columns:
        raise BadInput(f"{version.ref} has no columns: nothing to export")
    if str(out) == "-":
        _into(df, fmt, out)
        return df.height
    out = Path(out)
    if out.is_dir():
        raise BadInput(f"-o {out}: is a directory; give a file path")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        _into(df, fmt, out)
        return df.height
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"-o {out}: cannot write there ({exc.strerror or exc})") from None
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _WRITERS[fmt](df, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        raise BadInput(f"-o {out}: cannot write there ({exc.strerror or exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return df.height


def _into(df: pl.DataFrame, fmt: str, out: Path | str) -> None:
    """Write into stdout (`-`) or an existing stream; a reader that went away (`| head`) ends the export quietly,
    as click does for its own output."""
    try:
        if str(out) == "-":
            _WRITERS[fmt](df, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with open(out, "wb") as fh:
                _WRITERS[fmt](df, fh)
    except (OSError, pl.exceptions.PolarsError) as exc:  # polars reports a closed pipe in its own words
        if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE or "os error 32" in str(exc):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe") from None
        raise BadInput(f"-o {out}: cannot write there ({getattr(exc, 'strerror', None) or exc})") from None


def _csv(df: pl.DataFrame, target: Path | BinaryIO) -> None:
    flat = df.with_columns(
        pl.col(c).map_elements(lambda v: json.dumps(_plain(v), ensure_ascii=False), return_dtype=pl.String)
        for c, t in df.schema.items() if t.is_nested()
    )
    flat.write_csv(target)


_WRITERS: dict[str, Callable[[pl.DataFrame, Path | BinaryIO], None]] = {
    "jsonl": lambda df, target: df.write_ndjson(target),
    "parquet": lambda df, target: df.write_parquet(target, compression="zstd"),
    "csv": _csv,
}


def _plain(value: object) -> object:
    return value.to_list() if isinstance(value, pl.Series) else value
