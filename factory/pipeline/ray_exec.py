"""The Ray executor of row-batch stages (`--executor ray`): the same jobs as the local executor, run by Ray Data.

The driver plans the jobs exactly as `run_stage` does (`stage.jobs(...)`); each job is one shard. Ray Data
(`from_items` + `map_batches` over a pool of actors) sends the jobs still missing to the actors; each actor loads
its own LLM (`load_llm(spec, home, **settings)`) and runs `stage.process`, then writes its shard atomically
(Parquet renamed into place, then a `.done` marker) under `<home>/shards/<name>/<version>/`. A rerun after a
killed driver or a lost node computes only the shards without a marker; the answers of a half-done shard come
from the shared response cache. The driver then writes every shard, in job order, through the store's writer
and commits, so the version id and the rows are the local executor's. The shard directory goes once committed.

What is shared across workers: the response cache (one SQLite file in WAL mode under the factory home), and
`--rpm`, `--tpm` and `--budget`, held for the whole run by one actor (`factory.pipeline.ray_limits`). A worker's
`FactoryError` (a budget stop, a bad key) reaches the driver as itself: one line, no traceback. A `vllm:` actor
asks Ray for the GPUs its engine spans (`Provider.ray_resources`). `session` joins or starts Ray for any stage
(near dedup: factory/pipeline/ray_dedup.py).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import pickle
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.errors import BadInput

SCALE_HINT = 'the Ray executor needs Ray Data: pip install "dataset-factory[scale]"'


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BadInput(SCALE_HINT) from None
    return ray


@contextlib.contextmanager
def session(address: str | None, workers: int) -> Iterator[Any]:
    """Ray, joined at `address` or started locally (`num_cpus=workers`, no dashboard) and stopped after."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def shard_dir(home: Path, out_name: str, version: str) -> Path:
    return Path(home) / "shards" / out_name / version


class ShardWorker:
    """A Ray actor: one LLM for its lifetime, one event loop, one fresh copy of the stage per job."""

    def __init__(self, stage: Any, spec: str, home: str, settings: dict[str, Any], schema: dict[str, Any],
                 directory: str, limits: Any = None):
        import asyncio

        from factory.llm import load_llm
        from factory.pipeline import ray_limits

        self.stage, self.schema = stage, schema
        self.directory = Path(directory)
        self.loop = asyncio.new_event_loop()
        self.llm = load_llm(spec, home=home, **settings)
        ray_limits.share(self.llm, limits)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from factory.errors import FactoryError

        done, errors = [], []
        for job, blob in zip(batch["job"], batch["rows"], strict=True):
            try:
                done.append(self.run_job(int(job), pickle.loads(blob)))
                errors.append(b"")
            except FactoryError as exc:  # Ray would wrap it and drop the cause: handed to the driver, which raises it
                done.append(int(job))
                errors.append(pickle.dumps((type(exc), exc.args)))
        return {"job": done, "error": errors}

    def run_job(self, job: int, rows: list[dict[str, Any]]) -> int:
        import polars as pl

        stage = copy.deepcopy(self.stage)
        before = _stats(self.llm)
        rows = stage.sendable(rows)  # blank rows are never sent: counted `skipped` on this copy, merged later
        out = self.loop.run_until_complete(stage.process(rows, self.llm)) if rows else []
        after = _stats(self.llm)
        name = f"job-{job:06d}"
        if out:
            frame = pl.DataFrame(out, schema={k: self.schema.get(k) for k in out[0]}, strict=False)
            tmp = self.directory / f".{name}.parquet.{os.getpid()}"
            frame.write_parquet(tmp)
            os.replace(tmp, self.directory / f"{name}.parquet")
        marker = {"rows": len(out), "stats": {k: after[k] - before[k] for k in after}}
        from ray import cloudpickle  # a stage may hold classes made at run time (a judge's verdict model)

        (self.directory / f".{name}.stage").write_bytes(cloudpickle.dumps(stage))
        tmp = self.directory / f".{name}.done.{os.getpid()}"
        tmp.write_text(json.dumps(marker))
        os.replace(tmp, self.directory / f"{name}.done")  # the marker last: a shard with one is complete
        return job

    def __del__(self) -> None:
        try:
            self.loop.run_until_complete(self.llm.aclose())
        except Exception:  # the actor is going away; a close that fails loses nothing
            pass


def _user_error(blob: bytes, ray: Any, limits: Any) -> BaseException:
    """The `FactoryError` a worker handed back; a budget stop says what all workers spent together."""
    from factory.llm.runner import BudgetExhausted

    kind, args = pickle.loads(blob)
    if issubclass(kind, BudgetExhausted) and limits is not None:
        spent = ray.get(limits.totals.remote())["spent"]
        return BudgetExhausted(f"{args[0].split(':')[0]}: ${spent:.4f} spent by all workers; rerun with a higher "
                               "--budget to continue (answered rows are not paid for again)")
    return kind(*args)


def _stats(llm: Any) -> dict[str, float]:
    from dataclasses import asdict

    return {k: v for k, v in asdict(llm.stats).items() if isinstance(v, (int, float))}


def run_jobs(store: Any, stage: Any, llm: Any, source: Any, out_name: str, version: str, jobs: list[list[dict]],
             schema: dict[str, Any], workers: int, address: str | None) -> tuple[list[Path | None], list[Any], dict]:
    """Compute every missing shard with Ray; return (parquet path or None per job, the jobs' stages, summed stats)."""
    ray = require_ray()
    directory = shard_dir(store.home, out_name, version)
    plan = hashlib.sha256(json.dumps([len(j) for j in jobs]).encode()).hexdigest()
    if (directory / "plan").is_file() and (directory / "plan").read_text() != plan:
        shutil.rmtree(directory)  # another job plan (other batch size): its shards do not line up with these
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plan").write_text(plan)
    names = [f"job-{i:06d}" for i in range(len(jobs))]
    missing = [i for i, n in enumerate(names) if not (directory / f"{n}.done").is_file()]
    if missing:
        from factory.pipeline import ray_limits

        settings = {**llm.settings.model_dump(), "progress": False}
        with session(address, workers):
            limits = ray_limits.start(ray, llm.settings)
            items = [{"job": i, "rows": pickle.dumps(jobs[i])} for i in missing]
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            args = dict(stage=stage, spec=llm.spec, home=str(store.home), settings=settings, schema=schema,
                        directory=str(directory), limits=limits)
            # one LLM per actor: an API client on a CPU, or a vLLM engine on the GPUs it spans
            out = ds.map_batches(ShardWorker, fn_constructor_kwargs=args, batch_size=1,
                                 concurrency=min(workers, len(missing)), **llm.provider.ray_resources())
            for n, row in enumerate(out.iter_rows(), 1):
                if row["error"]:
                    raise _user_error(row["error"], ray, limits)
                print(f"ray: shard {row['job'] + 1}/{len(jobs)} done ({n}/{len(missing)} this run)",
                      file=sys.stderr, flush=True)
    paths, stages, totals = [], [], {}
    for n in names:
        marker = json.loads((directory / f"{n}.done").read_text())
        for k, v in marker["stats"].items():
            totals[k] = totals.get(k, 0) + v
        stages.append(pickle.loads((directory / f".{n}.stage").read_bytes()))
        paths.append(directory / f"{n}.parquet" if marker["rows"] else None)
    return paths, stages, totals
