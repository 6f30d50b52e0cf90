"""Write one dataset version atomically, in shards, streaming.

    with store.writer("evol", stage=..., config=..., inputs=[...]) as w:
        if w.exists:              # same recipe already stored: nothing to do
            return w.existing
        for batch in batches:
            w.write(batch)        # polars DataFrame or list of dicts; flushed to a shard when big enough
        version = w.commit(counters={...}, cost=...)

Rows go to `.tmp-<version>-<pid>/data/part-*.parquet`; `commit` names the shards
`train-00000-of-00003.parquet` (the Hub's split convention), writes `manifest.json` last and renames the
directory into place. An exception inside the `with` block removes the temp directory. A commit that replaces
a version swaps the directories through `factory.fsutil.swap_dir`: a kill between its renames is finished by
the next writer or reader (`Store.sweep`), never lost.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import FactoryError
from factory.fsutil import fsync_dir, fsync_file, pid_alive, swap_dir
from factory.secrets import redact
from factory.store.manifest import (
    MANIFEST,
    Cost,
    FileEntry,
    InputRef,
    Manifest,
    StageInfo,
    now_iso,
    prompt_hashes,
    version_id,
)
from factory.store.store import DatasetVersion, Store

if TYPE_CHECKING:
    import polars as pl

# In-memory size that starts a new shard (the Hub suggests files under 500 MB); FACTORY_SHARD_MB overrides it.
SHARD_BYTES = int(float(os.environ.get("FACTORY_SHARD_MB", "256")) * 1024 * 1024)


class VersionWriter:
    def __init__(self, store: Store, name: str, *, stage: StageInfo, config: dict[str, Any],
                 inputs: list[InputRef] | None = None, prompts: dict[str, str] | None = None,
                 shard_bytes: int = SHARD_BYTES, extra: dict[str, Any] | None = None):
        self.store, self.name, self.stage = store, name, stage
        self.config = redact(config)
        self.inputs = list(inputs or [])
        self.prompts = prompt_hashes(prompts)
        self.version = version_id(stage, config, self.inputs, prompts)
        self.extra = dict(extra or {})
        self.shard_bytes = shard_bytes
        self.final_dir = store.datasets_dir / name / self.version
        self.tmp_dir: Path | None = None
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        self._schema: pl.Schema | None = None
        self._shards: list[tuple[Path, int]] = []
        self.rows = 0

    # -- state -------------------------------------------------------------------------------------
    @property
    def existing(self) -> DatasetVersion | None:
        return self.store.get(self.name, self.version)

    @property
    def exists(self) -> bool:
        return (self.final_dir / MANIFEST).is_file()

    def __enter__(self) -> VersionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def _open(self) -> Path:
        if self.tmp_dir is None:
            self.store.ensure()
            parent = self.store.datasets_dir / self.name
            parent.mkdir(parents=True, exist_ok=True)
            self.store.sweep()
            self.tmp_dir = parent / f".tmp-{self.version}-{os.getpid()}"
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            (self.tmp_dir / "data").mkdir(parents=True)
        return self.tmp_dir

    # -- rows --------------------------------------------------------------------------------------
    def write(self, rows: pl.DataFrame | list[dict[str, Any]]) -> None:
        import polars as pl

        df = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
        if df.height == 0:
            return
        size = df.estimated_size()
        if size > self.shard_bytes and df.height > 1:
            step = max(1, int(df.height * self.shard_bytes / size))
            for chunk in df.iter_slices(step):
                self.write(chunk)
            return
        self._buffer.append(df)
        self._buffered += df.estimated_size()
        if self._buffered >= self.shard_bytes:
            self._flush()

    def _flush(self) -> None:
        import polars as pl

        if not self._buffer:
            return
        df = pl.concat(self._buffer, how="diagonal_relaxed") if len(self._buffer) > 1 else self._buffer[0]
        self._buffer, self._buffered = [], 0
        if self._schema is None:
            self._schema = df.schema
        else:
            df = _conform(df, self._schema)
        path = self._open() / "data" / f"part-{len(self._shards):05d}.parquet"
        df.write_parquet(path, compression="zstd", statistics=True)
        self._shards.append((path, df.height))
        self.rows += df.height

    # -- finish ------------------------------------------------------------------------------------
    def commit(self, counters: dict[str, int] | None = None, cost: Cost | None = None,
               extra: dict[str, Any] | None = None, set_latest: bool = True, replace: bool = False) -> DatasetVersion:
        """Finish the version: name the shards, write the manifest, rename into place.

        `replace` swaps out an existing version of the same recipe: only for a rerun that completes rows the
        earlier run had to keep as failures (same recipe, same id, fewer holes).
        """
        import polars as pl

        self._flush()
        tmp = self._open()
        total = len(self._shards)
        files: list[FileEntry] = []
        for i, (path, rows) in enumerate(self._shards):
            final = path.with_name(f"train-{i:05d}-of-{total:05d}.parquet")
            os.rename(path, final)
            fsync_file(final)  # the shards reach the disk before the manifest that names them
            files.append(FileEntry(path=f"data/{final.name}", rows=rows, bytes=final.stat().st_size))
        fsync_dir(tmp / "data")
        schema = self._schema or pl.Schema()
        manifest = Manifest(
            name=self.name, version=self.version, created=now_iso(), stage=self.stage, config=self.config,
            inputs=self.inputs, prompts=self.prompts, rows=self.rows,
            columns={k: str(v) for k, v in schema.items()}, counters=dict(counters or {}), cost=cost or Cost(),
            files=files, **{**self.extra, **(extra or {})},
        )
        with open(tmp / MANIFEST, "w") as fh:
            fh.write(manifest.dumps())
            fh.flush()
            os.fsync(fh.fileno())
        if replace and self.exists:
            swap_dir(tmp, self.final_dir)
        else:
            try:
                os.rename(tmp, self.final_dir)
            except OSError:
                if not self.exists:  # anything but "another writer finished the same version first"
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
            fsync_dir(self.final_dir.parent)
        self.tmp_dir = None
        if set_latest:
            self.store.set_latest(self.name, self.version)
        version = self.existing
        if version is None:
            raise FactoryError(f"could not store {self.name}@{self.version}")
        return version

    def abort(self) -> None:
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None
        self._buffer = []


def _conform(df: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Give a later batch the first shard's columns and types, so all shards read as one table."""
    import polars as pl

    extra = set(df.columns) - set(schema)
    if extra:
        raise FactoryError(f"rows have columns the first shard lacks: {', '.join(sorted(extra))}")
    try:
        return df.select([
            (pl.col(c) if c in df.columns else pl.lit(None)).cast(dtype).alias(c) for c, dtype in schema.items()
        ])
    except pl.exceptions.PolarsError as exc:
        raise FactoryError(f"rows do not match the first shard's types: {exc}") from None


__all__ = ["SHARD_BYTES", "VersionWriter", "pid_alive"]
