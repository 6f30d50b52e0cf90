"""One trainer run: load the starting weights, wrap them for the tuning mode, call TRL, save a checkpoint.

The method modules (`trainers.sft`, `trainers.dpo`) say what differs: their data format, TRL config class,
defaults and trainer. Everything else (loading, LoRA/QLoRA, progress, resume, saving) is shared here, once.
Under `accelerate launch` every process runs this; only the main process writes files TRL does not.
"""

from __future__ import annotations

import gc
import importlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput
from factory.trainers import checkpoint
from factory.trainers.config import TrainConfig
from factory.trainers.data import load_training_data
from factory.trainers.model import ensure_chat_template, load_model, load_tokenizer

if TYPE_CHECKING:
    from factory.store import DatasetVersion

METHODS = {"sft": "factory.trainers.sft", "dpo": "factory.trainers.dpo"}


def method_module(method: str) -> Any:
    return importlib.import_module(METHODS[method])


@dataclass
class Settings:
    """Run-wide choices, settled before the first job."""

    cfg: TrainConfig
    tuning: str  # what is actually trained: lora | qlora | full (qlora may have fallen back to lora)
    on_cpu: bool
    quiet: bool
    resume: bool


@dataclass
class Job:
    method: str
    base: str  # the starting weights: the user's model spec, or a previous stage's directory
    versions: list[DatasetVersion]
    directory: Path  # TRL's output_dir; the checkpoint is saved here
    tokenizer_from: str | None = None  # default: base
    adapter_from: Path | None = None  # keep training this adapter (sequential SFT, "continue")
    merge: bool = False  # save the adapter merged into full weights


@dataclass
class JobResult:
    metrics: dict[str, Any]
    adapter: bool
    resumed_from: str | None = None


def run_job(job: Job, s: Settings) -> JobResult:
    from accelerate import PartialState

    mod = method_module(job.method)
    cfg = s.cfg
    quantization = cfg.bnb_config() if s.tuning == "qlora" else None
    tokenizer = load_tokenizer(job.tokenizer_from or job.base, cfg.model_init)
    model = load_model(job.base, cfg.model_init, quantization)
    added = ensure_chat_template(tokenizer, model, cfg.chat_template)
    fit_embeddings(model, tokenizer)
    state = PartialState()
    with state.main_process_first():  # one process fills the datasets cache, the others read it
        dataset = load_training_data(mod.FORMAT, job.versions)
    if _conversational(dataset, mod.FORMAT.columns) and not tokenizer.chat_template:
        raise BadInput(f"model {job.base} has no chat template and chat_template is none; set chat_template=chatml "
                       "or a .jinja file")

    peft_config = None
    if s.tuning != "full":
        if job.adapter_from is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(job.adapter_from), is_trainable=True)
        else:
            peft_config = cfg.lora_config(added)
    args = cfg.training_args(mod.config_class(), str(job.directory), defaults=mod.training_defaults(s.tuning),
                             on_cpu=s.on_cpu, quiet=s.quiet)
    trainer = mod.make_trainer(model, tokenizer, dataset, args, peft_config, user_training=cfg.training,
                               tuning=s.tuning)
    left = getattr(trainer, "train_dataset", None)
    if left is not None and len(left) == 0:  # else the Trainer fails with "num_samples=0"
        refs = ", ".join(v.ref for v in job.versions)
        raise BadInput(f"no training example is left of the {len(dataset)} rows of {refs} after tokenizing: with "
                       f"max_length={getattr(args, 'max_length', None)}, examples whose trained tokens are all cut "
                       "off are dropped; raise training.max_length")
    if s.quiet:
        _silence(trainer)

    last = checkpoint.last_trainer_checkpoint(job.directory) if s.resume else None
    output = trainer.train(resume_from_checkpoint=str(last) if last else None)
    metrics = checkpoint.train_metrics(output, trainer.state.log_history)
    adapter = s.tuning != "full"
    save_dir = job.directory / "adapter" if (adapter and job.merge) else job.directory
    trainer.save_model(str(save_dir))
    main = trainer.is_world_process_zero()
    if main:
        if adapter:  # PEFT saves no generation config; generation should stop where the base model stops
            trainer.model.generation_config.save_pretrained(str(save_dir))
            checkpoint.name_adapter_base(save_dir, job.base)
        checkpoint.save_training_args(job.directory, trainer.args)
        trainer.save_state()  # trainer_state.json: the Trainer's log (loss per step), which `factory view` plots
        checkpoint.remove_trainer_checkpoints(job.directory)
    trainer.accelerator.wait_for_everyone()
    del trainer, model
    _free_memory()
    if adapter and job.merge:
        if main:
            from factory.trainers.merge import merge_adapter

            merge_adapter(save_dir, job.directory, base=job.base, model_init=cfg.model_init)
            shutil.rmtree(save_dir)
        state.wait_for_everyone()  # the next stage loads these weights
        adapter = False
    return JobResult(metrics=metrics, adapter=adapter, resumed_from=last.name if last else None)


def fit_embeddings(model: Any, tokenizer: Any) -> None:
    """A tokenizer saved after tokens were added is longer than the base model's embedding matrix."""
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))


def _conversational(dataset: Any, columns: tuple[str, ...]) -> bool:
    row = dataset[0]
    return any(isinstance(row[c], list) for c in columns)


def _silence(trainer: Any) -> None:
    """`-q`: no progress bar and no printed log lines (metrics are still collected for factory.json)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _free_memory() -> None:
    """Before a merge loads the base again, let the trained copy go (on a GPU it may not fit twice)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
