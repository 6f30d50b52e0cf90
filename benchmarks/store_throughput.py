"""Import and export throughput of a 1 M-row dataset, against plain polars in the same run.

Baseline: `polars.read_ndjson(file).write_parquet(out)`, the least a JSONL -> Parquet import can do.
Ours: `factory datasets import` (read, hash the file for the version id, write shards + manifest, rename)
and `factory datasets export --format jsonl`.

    python benchmarks/store_throughput.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl
from _results import record

from factory.store import Store
from factory.store.export import export_version
from factory.store.importer import import_dataset


def make_jsonl(path: Path, n: int) -> None:
    pl.DataFrame({
        "id": [f"row-{i}" for i in range(n)],
        "instruction": [f"Explain item {i} of the catalogue in two sentences." for i in range(n)],
        "context": [""] * n,
        "response": [f"Item {i} is a thing. It has properties worth knowing about." for i in range(n)],
        "category": ["open_qa", "brainstorming", "closed_qa", "summarization"] * (n // 4) + ["open_qa"] * (n % 4),
    }).write_ndjson(path)


def best_of(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="factory-bench-"))
    try:
        src = work / "data.jsonl"
        make_jsonl(src, args.rows)
        size_mb = src.stat().st_size / 1e6

        def baseline_import() -> None:
            pl.read_ndjson(src).write_parquet(work / "baseline.parquet")

        def baseline_full_schema() -> None:  # what a correct import must do: look at every row's keys
            pl.read_ndjson(src, infer_schema_length=None).write_parquet(work / "baseline-full.parquet")

        def ours_import() -> None:
            shutil.rmtree(work / "home", ignore_errors=True)
            import_dataset(Store(work / "home"), str(src), "bench")

        t_base_in = best_of(baseline_import, args.runs)
        t_full_in = best_of(baseline_full_schema, args.runs)
        t_ours_in = best_of(ours_import, args.runs)
        version = Store(work / "home").resolve("bench")

        def baseline_export() -> None:
            pl.read_parquet(work / "baseline.parquet").write_ndjson(work / "baseline-out.jsonl")

        def ours_export() -> None:
            export_version(version, "jsonl", work / "ours-out.jsonl")

        t_base_out = best_of(baseline_export, args.runs)
        t_ours_out = best_of(ours_export, args.runs)
        n = args.rows

        def row(what: str, ours: float, base: float) -> str:
            return (f"| {what} | {n / ours:,.0f} rows/s ({ours:.2f} s) | {n / base:,.0f} rows/s ({base:.2f} s) "
                    f"| {base / ours:.2f} |")

        record("Store import/export throughput (benchmarks/store_throughput.py)", f"""
{n:,} rows, {size_mb:.0f} MB of JSONL; best of {args.runs}.

| operation | ours | baseline (plain polars) | ours / baseline rows/s |
|---|---|---|---|
{row("import JSONL -> store", t_ours_in, t_base_in)}
{row("import, vs polars inferring the schema from every row", t_ours_in, t_full_in)}
{row("export store -> JSONL", t_ours_out, t_base_out)}

Plain `polars.read_ndjson` infers the schema from the first 100 rows and silently drops keys that first appear
later (checked: a key on row 501 is lost), so factory infers from every row; the second import row compares
against polars doing the same. Import also hashes the source (sha256, in a parallel thread) for the version
id, writes zstd Parquet shards and the manifest, and renames the version into place; re-importing unchanged
data is a no-op.
""")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
