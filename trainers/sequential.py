"""Sequential SFT (OpenBezoar): one stage per dataset, in order, each starting from the previous stage.

    DIR/stage-1-<name>/   stage 1's checkpoint (its own factory.json)
    DIR/stage-2-<name>/   starts from stage 1
    DIR/...               the last stage's files again (hard links), with the whole run's factory.json

`sequential: merge` (the default, as in OpenBezoar) merges each stage's LoRA into the weights and puts a fresh
LoRA on them for the next stage, so every stage is saved as full weights. `sequential: continue` keeps
training one adapter through all stages; every stage is saved as an adapter over the original base model.
Full fine-tuning carries the weights either way. With `--resume`, finished stages are kept and the
interrupted stage resumes from its last `checkpoint-*`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.papers import OPENBEZOAR
from factory.records import FACTORY_JSON, CheckpointRecord
from factory.trainers import checkpoint
from factory.trainers.job import Job, Settings, run_job

if TYPE_CHECKING:
    from factory.store import DatasetVersion

log = logging.getLogger(__name__)
METHOD = "sft-sequential"
PAPERS = (OPENBEZOAR,)  # one SFT stage per scheme's dataset, in order, is OpenBezoar's recipe


def stage_dir_name(index: int, version: DatasetVersion) -> str:
    return f"stage-{index}-{version.name}"


def run_sequential(versions: list[DatasetVersion], run_dir: Path, s: Settings, is_main: bool,
                   extra: dict[str, Any]) -> CheckpointRecord:
    """Train every stage (skipping those a resumed run already finished); return the final factory.json."""
    cfg = s.cfg
    stages: list[dict[str, Any]] = []
    previous: Path | None = None
    for index, version in enumerate(versions, start=1):
        directory = run_dir / stage_dir_name(index, version)
        done = CheckpointRecord.find(directory)
        if done is not None:
            log.info("stage %d (%s) finished in an earlier run; kept", index, version.ref)
            stages.append(done.stages[-1])
            previous = directory
            continue
        result = run_job(_job(cfg.model, version, directory, previous, s), s)
        entry = {"stage": index, "dataset": {"name": version.name, "version": version.version},
                 "subdir": directory.name, "adapter": result.adapter, "metrics": result.metrics}
        if result.resumed_from:
            entry["resumed_from"] = result.resumed_from
        stages.append(entry)
        if is_main:
            _record(cfg.model, versions[:index], stages, result.adapter, result.metrics, s, extra).write(directory)
        previous = directory
    assert previous is not None
    if is_main:  # DIR itself is the final checkpoint
        checkpoint.link_or_copy_tree(previous, run_dir, skip=(FACTORY_JSON,))
    metrics = {**stages[-1]["metrics"], "total_steps": sum(st["metrics"].get("steps", 0) for st in stages)}
    return _record(cfg.model, versions, stages, stages[-1]["adapter"], metrics, s, extra)


def _job(model: str, version: DatasetVersion, directory: Path, previous: Path | None, s: Settings) -> Job:
    adapter = s.tuning != "full"
    merge = adapter and s.cfg.sequential == "merge"
    if previous is None:
        return Job("sft", model, [version], directory, merge=merge)
    if adapter and not merge:  # continue: the previous stage's adapter over the original base keeps training
        return Job("sft", model, [version], directory, tokenizer_from=str(previous), adapter_from=previous)
    return Job("sft", str(previous), [version], directory, merge=merge)


def _record(model: str, versions: list[DatasetVersion], stages: list[dict[str, Any]], adapter: bool,
            metrics: dict[str, Any], s: Settings, extra: dict[str, Any]) -> CheckpointRecord:
    return checkpoint.record(
        method=METHOD, base_model=model, adapter=adapter,
        datasets=[{"name": v.name, "version": v.version} for v in versions],
        config=s.cfg.recorded(), config_hash=s.cfg.config_hash(), metrics=metrics, stages=list(stages), **extra)
