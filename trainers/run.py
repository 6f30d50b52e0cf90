"""A whole training run, from a config to a finished checkpoint directory.

Everything a user can get wrong is checked before anything heavy is loaded or anything is written: the
config keys, the dataset versions and their columns, the model path and tokenizer, QLoRA without CUDA, and
the output directory. Then the run trains in `DIR.partial/` and becomes `DIR` when it has finished.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput
from factory.records import FACTORY_JSON, CheckpointRecord
from factory.trainers import checkpoint
from factory.trainers.config import TrainConfig
from factory.trainers.data import check_columns
from factory.trainers.job import Job, Settings, method_module, run_job
from factory.trainers.model import check_model_spec
from factory.trainers.outdir import OutDir

if TYPE_CHECKING:
    from factory.store import Store

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out: Path
    record: CheckpointRecord
    main: bool = True  # False in the other processes of a distributed run


def settle_tuning(cfg: TrainConfig) -> tuple[str, list[str]]:
    """QLoRA needs CUDA and bitsandbytes; without them it is an error, or LoRA when the user allows it."""
    if cfg.tuning != "qlora":
        return cfg.tuning, []
    import torch

    problem = None
    if not torch.cuda.is_available():
        problem = "QLoRA (4-bit bitsandbytes) needs a CUDA GPU and there is none"
    elif importlib.util.find_spec("bitsandbytes") is None:
        problem = "QLoRA needs bitsandbytes: pip install 'factory[gpu]'"
    if problem is None:
        return "qlora", []
    if cfg.qlora_fallback == "lora":
        note = f"{problem}; trained plain LoRA instead (qlora_fallback=lora)"
        log.warning(note)
        return "lora", [note]
    raise BadInput(f"{problem}; pass --set qlora_fallback=lora to train plain LoRA instead")


def run_training(store: Store, cfg: TrainConfig, *, overwrite: bool = False, resume: bool = False,
                 quiet: bool = False, record_extra: dict[str, Any] | None = None) -> TrainResult:
    """Train `cfg` into `cfg.out`; `record_extra` adds (or replaces) keys of the run's factory.json (a loop's
    own lineage, e.g. SPIN's iteration and data chain)."""
    cfg.require()
    mod = method_module(cfg.method)
    versions = [store.resolve(ref) for ref in cfg.data]
    check_columns(mod.FORMAT, versions)
    cfg.data = [v.ref for v in versions]  # pin the versions: lineage and config hash name exactly these
    check_model_spec(cfg.model, cfg.model_init)
    outdir = OutDir(cfg.out, overwrite=overwrite, resume=resume)
    identity = cfg.identity_hash()
    outdir.check(identity)
    cfg.check_sections(mod.config_class())
    tuning, notes = settle_tuning(cfg)

    import torch
    from accelerate import PartialState

    on_cpu = not torch.cuda.is_available()
    # Under `accelerate launch`/torchrun on CPU, only cpu=True finds the other processes (TrainingArguments does
    # the same with use_cpu), so this must agree with the trainer's setting.
    state = PartialState(cpu=bool(cfg.training.get("use_cpu", on_cpu)))
    settings = Settings(cfg=cfg, tuning=tuning, on_cpu=on_cpu, quiet=quiet, resume=resume)
    run_dir = outdir.open(identity, is_main=state.is_main_process)
    state.wait_for_everyone()
    extra: dict[str, Any] = {"tuning": tuning, **({"notes": notes} if notes else {})}
    try:
        if cfg.method == "sft" and len(versions) > 1 and cfg.sequential != "off":
            from factory.trainers.sequential import run_sequential

            doc = run_sequential(versions, run_dir, settings, state.is_main_process, extra)
        else:
            merge = cfg.merge and tuning != "full"
            result = run_job(Job(cfg.method, cfg.model, versions, run_dir, merge=merge), settings)
            if result.resumed_from:
                extra["resumed_from"] = result.resumed_from
            doc = checkpoint.record(
                method=cfg.method, base_model=cfg.model, adapter=result.adapter,
                datasets=[{"name": v.name, "version": v.version} for v in versions], config=cfg.recorded(),
                config_hash=cfg.config_hash(), metrics=result.metrics, **extra)
    except BaseException:
        if state.is_main_process and not resume and not _has_progress(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: leave no partial run behind
        raise
    doc = CheckpointRecord.model_validate({**doc.document(), **(record_extra or {})})
    if state.is_main_process:
        doc.write(run_dir)
        outdir.commit()
    state.wait_for_everyone()
    return TrainResult(out=outdir.out, record=doc, main=state.is_main_process)


def _has_progress(run_dir: Path) -> bool:
    """A trainer checkpoint or a finished stage: something `--resume` can continue from."""
    if not run_dir.is_dir():
        return False
    return any(run_dir.glob("checkpoint-*")) or any(run_dir.glob("stage-*/checkpoint-*")) or any(
        run_dir.glob(f"stage-*/{FACTORY_JSON}"))


def load_config(file: str | Path | None, sets: tuple[str, ...] | list[str], **given: Any) -> TrainConfig:
    """defaults < --config FILE < --set flags < explicit command-line options (those that were given)."""
    from pydantic import ValidationError

    from factory.config import deep_merge, parse_sets, read_yaml, validation_message

    data = deep_merge(read_yaml(file) if file else {}, parse_sets(sets, TrainConfig))
    data.update({k: v for k, v in given.items() if v not in (None, (), [])})
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInput(validation_message(exc, model=TrainConfig)) from None
