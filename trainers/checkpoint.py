"""A checkpoint directory and its `factory.json`: what was trained, from what, on which dataset versions.

    DIR/factory.json            this file's lineage record (read by `factory publish` and the model cards)
    DIR/adapter_config.json     + adapter_model.safetensors    (adapter: true)
    DIR/config.json             + model*.safetensors           (adapter: false)
    DIR/tokenizer*, chat_template.jinja, generation_config.json, training_args.json (+ TRL's training_args.bin)
    DIR/stage-<i>-<dataset>/    sequential SFT: each stage, a checkpoint directory of its own

`factory.json` is a `factory.records.CheckpointRecord` (its keys: docs/training.md); `factory publish` reads it
with the same model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from factory import __version__, embedded
from factory.records import FACTORY_JSON as FACTORY_JSON  # where trainers have always found it
from factory.records import CheckpointRecord, InputRef
from factory.secrets import redact
from factory.store.manifest import now_iso

TRAINING_ARGS_JSON = "training_args.json"
PACKAGES = ("trl", "peft", "transformers", "torch")


def package_versions() -> dict[str, str]:
    """Installed versions of the libraries a checkpoint depends on (no git state: reproducible anywhere)."""
    versions = {"factory": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def record(*, method: str, base_model: str, adapter: bool, datasets: list[InputRef | dict[str, str]],
           config: dict[str, Any],
           config_hash: str, metrics: dict[str, Any], stages: list[dict[str, Any]] | None = None,
           **extra: Any) -> CheckpointRecord:
    """The `factory.json` of a run that just finished: secrets redacted, library versions and time added.

    The embedded model is named by its Hub id, so a published checkpoint names a base that loads anywhere;
    `base_model_source` says what was loaded here (and what merging loads again)."""
    if embedded.is_embedded(base_model):
        extra.setdefault("base_model_source", "local")
        base_model = embedded.HUB_ID
    return CheckpointRecord(
        method=method, base_model=base_model, adapter=adapter, datasets=datasets, config=redact(config),
        config_hash=config_hash, metrics=_finite(metrics), versions=package_versions(), stages=stages or [],
        created=now_iso(), **extra)


def name_adapter_base(directory: Path, base: str) -> None:
    """PEFT records the folder the base was loaded from; the embedded model's is this machine's cache, so name
    it by its Hub id instead: the adapter then loads anywhere (`AutoPeftModelForCausalLM`, the Hub)."""
    path = directory / "adapter_config.json"
    if not embedded.is_embedded(base) or not path.is_file():
        return
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = embedded.HUB_ID
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def train_metrics(train_output: Any, log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """TRL's final train metrics (`train_loss` is the run's mean), the number of optimizer steps, and the values
    of the last log (`loss`, DPO's `rewards/margins`, ...) where the final metrics do not have them already."""
    metrics = {k: v for k, v in train_output.metrics.items() if isinstance(v, (int, float))}
    metrics["steps"] = int(train_output.global_step)
    last = next((h for h in reversed(log_history) if "loss" in h), {})
    for key, value in last.items():
        if isinstance(value, (int, float)) and key not in ("epoch", "step", "learning_rate", "grad_norm"):
            metrics.setdefault(key, value)
    return metrics


def save_training_args(directory: Path, args: Any) -> None:
    """TRL saves `training_args.bin` (a pickle); this JSON copy is readable without unpickling."""
    text = json.dumps(redact(json.loads(args.to_json_string())), indent=2, sort_keys=True)
    (directory / TRAINING_ARGS_JSON).write_text(text + "\n")


def remove_trainer_checkpoints(directory: Path) -> None:
    """Intermediate `checkpoint-*` folders hold optimizer state for --resume; a finished checkpoint drops them."""
    for sub in Path(directory).glob("checkpoint-*"):
        if sub.is_dir():
            shutil.rmtree(sub, ignore_errors=True)


def last_trainer_checkpoint(directory: Path) -> Path | None:
    """The newest complete `checkpoint-N`: the Trainer writes `trainer_state.json` last, so a folder a crash cut
    short (which transformers' own `get_last_checkpoint` would pick) is passed over."""
    found = [p for p in Path(directory).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def link_or_copy_tree(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> None:
    """Put `src`'s files into `dst` as hard links (same disk: no second copy of the weights), else copies."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name in skip or item.name.startswith("checkpoint-"):
            continue
        target = dst / item.name
        if item.is_dir():
            link_or_copy_tree(item, target)
            continue
        if target.exists():
            target.unlink()
        try:
            os.link(item, target)
        except OSError:
            shutil.copy2(item, target)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/Infinity; a diverged loss is recorded as null rather than as invalid JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
