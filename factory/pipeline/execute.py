"""Run a stage over a dataset version and store its output as a new version: the one executor of every stage.

Rows stream from the input's Parquet shards in batches; each batch goes through `stage.process(rows, llm)`
and the output rows are written to the store in order: memory holds a batch, not the dataset. Every LLM
answer is in the response cache the moment it arrives, so a crash or a budget stop writes no version but
loses nothing: the rerun pays only for what is missing. A run whose rows partly failed is stored with the
failures kept (an `error` column, counted); rerunning the same command retries just those rows and
replaces that version. What `stage.manifest_extra()` returns goes into the manifest.

Rows with nothing to send (a null or blank instruction: `stage.blank`) are left out before `process`, never
sent, and counted `skipped`.

A whole-table stage (`stage.whole_table`: dedup, filters) gets the input as one DataFrame in
`process_table` and calls no model; its counters are `kept` plus its own, and its version is named by its
config alone (no `limit` unless one is given), as these stages always were.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from factory.pipeline.outcome import check_outcome, require_rows, usable
from factory.pipeline.stage import Stage
from factory.store import DatasetVersion, InputRef, Store

BATCH_JOB_ROWS = 50_000  # rows per stage job under --batch (each job's requests become one or more batches)


@dataclass
class StageResult:
    version: DatasetVersion
    reused: bool  # the same recipe was already stored complete: nothing was run
    warning: str | None = None  # one line when the stage lost most of its rows (docs: "Honest results")


def batches(source: DatasetVersion, limit: int | None, size: int) -> Iterator[list[dict[str, Any]]]:
    lf = source.scan() if limit is None else source.scan().head(limit)
    frames = lf.collect_batches(chunk_size=size) if hasattr(lf, "collect_batches") else lf.collect().iter_slices(size)
    for frame in frames:
        for start in range(0, frame.height, size):
            yield frame.slice(start, size).to_dicts()


def run_stage(store: Store, stage: Stage, llm: Any, source: DatasetVersion, out_name: str,
              limit: int | None = None, batch_rows: int | None = None, max_rows: int | None = None,
              executor: str = "local", ray_address: str | None = None, workers: int = 2,
              allow_empty: bool = False) -> StageResult:
    """Run `stage` with `llm` (None for stages that call no model) over `source` into a new version of `out_name`.

    `limit` caps the input rows read; `max_rows` caps the output rows kept (a scheme's `--n`). What a batch
    of work is comes from `stage.jobs` (by default: batches of input rows). `executor="ray"` runs the jobs as
    shards on Ray (`factory.pipeline.ray_exec`): same version id, same rows. A run with no usable row raises
    `EmptyResult` and stores nothing unless `allow_empty`; one that lost > 90 % of its rows says so in `warning`.
    """
    import polars as pl

    from factory.llm.runner import run_sync

    require_rows(source)
    asked = max_rows or (source.manifest.rows if limit is None else min(limit, source.manifest.rows))
    stage.bind(list(source.manifest.columns))
    stage.check_inputs(list(source.manifest.columns), f"{source.ref}")
    stage.check_types(source.scan().collect_schema(), source.ref)
    config = stage.recipe()
    if not stage.whole_table or limit is not None:
        config["limit"] = limit
    if llm is not None:
        config["llm"] = llm.spec
    if max_rows is not None:
        config["n"] = max_rows
    writer = store.writer(out_name, stage=stage.info(), config=config, prompts=stage.prompt_templates(),
                          inputs=[InputRef(name=source.name, version=source.version)])
    existing = writer.existing
    refresh = llm is not None and llm.settings.refresh
    if existing is not None and not existing.manifest.counters.get("failed") and not refresh:
        store.set_latest(out_name, existing.version)
        return StageResult(existing, reused=True)
    if stage.whole_table:
        return _run_table(stage, source, writer, limit, replace=existing is not None, asked=asked,
                          allow_empty=allow_empty)
    schema = {**source.scan().collect_schema(), **stage.output_schema()}
    size = batch_rows or (max(512, 8 * llm.settings.concurrency) if llm is not None else 10_000)
    if batch_rows is None and llm is not None and llm.settings.batch:
        size = BATCH_JOB_ROWS  # a batch takes hours, not seconds: few large jobs, not many small ones

    if executor == "ray" and llm is not None:
        return _run_ray(store, stage, llm, source, out_name, writer, schema, limit, size, max_rows,
                        replace=existing is not None, address=ray_address, workers=workers)
    seen = {"good": 0, "error": None}

    async def run() -> dict[str, int]:
        counts = {"kept": 0, "dropped": 0, "failed": 0}
        try:
            for rows in stage.jobs(source, limit, size, max_rows):
                rows = stage.sendable(rows) if llm is not None else rows
                out = await stage.process(rows, llm) if rows else []
                if max_rows is not None:
                    out = out[: max_rows - counts["kept"]]
                if out:
                    # the stage's key order, with the declared (or input) types: nulls get a real type
                    frame = pl.DataFrame(out, schema={k: schema.get(k) for k in out[0]}, strict=False)
                    writer.write(frame)
                    counts["kept"] += frame.height
                    seen["good"] += usable(frame)
                    if "error" in frame.columns:
                        counts["failed"] += frame["error"].is_not_null().sum()
                        if seen["error"] is None and counts["failed"]:
                            seen["error"] = frame["error"].drop_nulls()[0]
                if max_rows is not None and counts["kept"] >= max_rows:
                    break
        finally:
            if llm is not None:
                await llm.aclose()
        return counts

    with writer:
        counts = {**run_sync(run()), **stage.counters}
        stage.check_result(counts, source)
        warning = check_outcome(stage, counts, seen["good"], asked, seen["error"], allow_empty)
        extra = {"llm": {"spec": llm.spec, "retries": llm.stats.retries}} if llm is not None else {}
        if llm is not None and llm.settings.batch:
            extra["llm"]["batches"] = {"submitted": llm.stats.batches_submitted, "resumed": llm.stats.batches_resumed}
        extra.update(stage_extra(stage))
        version = writer.commit(counters=counts, cost=llm.stats.cost() if llm is not None else None,
                                replace=existing is not None, extra=extra)
    return StageResult(version, reused=False, warning=warning)


def _run_ray(store: Store, stage: Stage, llm: Any, source: DatasetVersion, out_name: str, writer: Any,
             schema: dict[str, Any], limit: int | None, size: int, max_rows: int | None, *, replace: bool,
             address: str | None, workers: int) -> StageResult:
    import polars as pl

    from factory.pipeline import ray_exec

    ray_exec.require_ray()
    jobs = list(stage.jobs(source, limit, size, max_rows))
    paths, stages, stats = ray_exec.run_jobs(store, stage, llm, source, out_name, writer.version, jobs, schema,
                                             workers, address)
    for done in stages:
        stage.merge(done)
    for key, value in stats.items():  # the workers' calls, this run's and the killed runs' alike
        setattr(llm.stats, key, type(getattr(llm.stats, key))(value))
    counts = {"kept": 0, "dropped": 0, "failed": 0}
    with writer:
        for path in paths:
            if path is None:
                continue
            frame = pl.read_parquet(path)
            if max_rows is not None:
                frame = frame.head(max_rows - counts["kept"])
            if frame.height:
                writer.write(frame)
                counts["kept"] += frame.height
                if "error" in frame.columns:
                    counts["failed"] += frame["error"].is_not_null().sum()
            if max_rows is not None and counts["kept"] >= max_rows:
                break
        counts = {**counts, **stage.counters}
        stage.check_result(counts, source)
        extra = {"llm": {"spec": llm.spec, "retries": llm.stats.retries}}
        extra.update(stage.manifest_extra())
        version = writer.commit(counters=counts, cost=llm.stats.cost(), replace=replace, extra=extra)
    import shutil

    shutil.rmtree(ray_exec.shard_dir(store.home, out_name, writer.version), ignore_errors=True)
    return StageResult(version, reused=False)


def _run_table(stage: Stage, source: DatasetVersion, writer: Any, limit: int | None, replace: bool, asked: int,
               allow_empty: bool) -> StageResult:
    with writer:
        df = stage.process_table(source.read() if limit is None else source.scan().head(limit).collect())
        counts = {"kept": df.height, **stage.counters}
        stage.check_result(counts, source)
        warning = check_outcome(stage, counts, usable(df), asked, None, allow_empty)
        writer.write(df)
        version = writer.commit(counters=counts, replace=replace, extra=stage_extra(stage))
    return StageResult(version, reused=False, warning=warning)


def stage_extra(stage: Stage) -> dict[str, Any]:
    """What a stage adds to its manifest: its paper (the cards cite it from there, whether or not the plugin is
    installed when they are made), then its own keys (`manifest_extra`)."""
    extra = {} if stage.paper is None else {"paper": stage.paper.with_key(f"{stage.name}{stage.version}").as_dict()}
    return {**extra, **stage.manifest_extra()}
