"""Merge a LoRA adapter into its base model's weights (`factory train merge-adapter DIR --out DIR2`).

The base is loaded unquantized (a QLoRA adapter is merged into full-precision weights, not into 4-bit ones),
grown to the adapter's tokenizer when tokens were added for a chat template, and merged with PEFT's
`merge_and_unload`. The result is a plain transformers checkpoint: weights, tokenizer, generation config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.errors import BadInput
from factory.records import CheckpointRecord
from factory.trainers import checkpoint
from factory.trainers.model import check_model_spec, load_model, load_tokenizer


def adapter_base(adapter_dir: Path) -> str:
    """The base model an adapter was trained on: factory.json's spec, else PEFT's own record."""
    doc = CheckpointRecord.find(adapter_dir)
    source = (doc.model_extra or {}).get("base_model_source") if doc is not None else None
    if source:  # what was loaded when it was trained (the embedded model: `local`)
        return str(source)
    if doc is not None and doc.base_model:
        return doc.base_model
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise BadInput(f"{adapter_dir}: the adapter does not name its base model; pass --base")
    return str(base)


def check_adapter_dir(adapter_dir: Path) -> None:
    if not (adapter_dir / "adapter_config.json").is_file():
        what = "full weights (nothing to merge)" if (adapter_dir / "config.json").is_file() else "no adapter"
        raise BadInput(f"{adapter_dir} holds {what}: merge-adapter needs a LoRA adapter directory")


def merge_adapter(adapter_dir: Path, out_dir: Path, *, base: str | None = None,
                  model_init: dict[str, Any] | None = None) -> Path:
    """Write `adapter_dir`'s adapter merged into its base to `out_dir` (weights, tokenizer, generation config)."""
    from peft import PeftModel
    from transformers import GenerationConfig

    from factory.trainers.job import fit_embeddings

    adapter_dir = Path(adapter_dir)
    check_adapter_dir(adapter_dir)
    base = base or adapter_base(adapter_dir)
    model_init = {k: v for k, v in (model_init or {}).items() if k not in ("quantization_config", "device_map")}
    check_model_spec(base, model_init)
    tokenizer = load_tokenizer(str(adapter_dir), {})
    model = load_model(base, model_init)
    fit_embeddings(model, tokenizer)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    if (adapter_dir / "generation_config.json").is_file():
        merged.generation_config = GenerationConfig.from_pretrained(str(adapter_dir))
    merged.config.eos_token_id = tokenizer.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def merged_record(adapter_dir: Path, base: str) -> CheckpointRecord:
    """factory.json of a merged checkpoint: the adapter's lineage, full weights, and where they came from."""
    doc = CheckpointRecord.find(adapter_dir) or CheckpointRecord(method="sft", base_model=base, adapter=True)
    return checkpoint.record(
        method=doc.method, base_model=doc.base_model, adapter=False, datasets=doc.datasets, config=doc.config,
        config_hash=doc.config_hash, metrics=doc.metrics, stages=doc.stages,
        merged_from={"path": str(adapter_dir.absolute()), "config_hash": doc.config_hash},
        **({"tuning": doc.tuning} if doc.tuning else {}),
    )
