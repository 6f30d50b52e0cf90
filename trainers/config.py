"""The training config: one pydantic model whose sections map onto TRL, PEFT and transformers objects.

    method: sft                    # sft | dpo
    model: HuggingFaceTB/SmolLM2-135M   # local dir or Hub id
    data: [evol-instruct, orca]    # dataset REFs; several for SFT = sequential stages (OpenBezoar)
    out: ckpt/sft
    tuning: lora                   # lora | qlora | full
    lora: {r: 16}                  # any field of peft.LoraConfig
    quantization: {}               # any argument of transformers.BitsAndBytesConfig (tuning: qlora)
    model_init: {dtype: bfloat16}  # any keyword of AutoModelForCausalLM.from_pretrained
    training: {learning_rate: 2e-4, max_steps: 100}   # any field of trl.SFTConfig / trl.DPOConfig

Our own keys are few and typed (`extra="forbid"`); the library sections pass through whatever the library
accepts and refuse, naming the key, whatever it does not. Defaults are the libraries' own except where
noted: LoRA on all linear layers, QLoRA as in the QLoRA paper (nf4, double quantization, bf16 compute), a
LoRA-sized SFT learning rate, no experiment trackers, and the CPU settings from STACK.md when there is no GPU.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import typing
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field, field_validator

from factory.config import StrictModel
from factory.errors import BadInput
from factory.hashing import short_digest
from factory.papers import LORA, QLORA
from factory.secrets import redact

LORA_DEFAULTS: dict[str, Any] = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear",
                                 "task_type": "CAUSAL_LM"}
QUANTIZATION_DEFAULTS: dict[str, Any] = {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                         "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16"}
# Set by factory itself: `--out` decides where TRL writes, `--resume` whether it resumes.
OWNED_TRAINING_KEYS = {"output_dir": "--out", "resume_from_checkpoint": "--resume"}
# The papers each tuning mode implements, cited on the model cards of what it trained.
TUNING_PAPERS = {"lora": (LORA,), "qlora": (QLORA, LORA)}
# Keys that change what is trained (not how long or how it is logged): a partial run may only be resumed with
# the same values.
IDENTITY_KEYS = ("method", "model", "data", "tuning", "lora", "quantization", "model_init", "chat_template",
                 "sequential", "merge")


class TrainConfig(StrictModel):
    """What to train, on what, and how."""

    method: Literal["sft", "dpo"] | None = Field(None, description="sft or dpo (the subcommand sets it)")
    model: str | None = Field(None, description="base model: a local directory or a Hub id")
    data: list[str] = Field(default_factory=list, description="dataset REFs (NAME, NAME@VERSION or a version dir)")
    out: str | None = Field(None, description="checkpoint directory to write")
    tuning: Literal["lora", "qlora", "full"] = Field("lora", description="LoRA adapter, 4-bit QLoRA, or all weights")
    qlora_fallback: Literal["error", "lora"] = Field(
        "error", description="without CUDA, QLoRA is an error, or (lora) plain LoRA with a warning")
    sequential: Literal["merge", "continue", "off"] = Field(
        "merge", description="SFT on several datasets: one stage each, starting from the previous stage merged "
                             "into the weights (merge) or continuing its adapter (continue); off: one run on all")
    chat_template: str = Field(
        "chatml", description="for base models without a chat template: chatml, openbezoar (### Instruction / "
                              "### Response), a .jinja file, or none")
    merge: bool = Field(False, description="LoRA/QLoRA: save the adapter merged into full weights (SPIN does, so the "
                                           "next iteration starts from them); ignored for full tuning")
    lora: dict[str, Any] = Field(default_factory=dict, validate_default=True, description="peft.LoraConfig fields")
    quantization: dict[str, Any] = Field(default_factory=dict, validate_default=True,
                                         description="transformers.BitsAndBytesConfig args")
    model_init: dict[str, Any] = Field(default_factory=dict, description="from_pretrained keyword arguments")
    training: dict[str, Any] = Field(default_factory=dict, description="trl.SFTConfig / trl.DPOConfig fields")

    @field_validator("data", mode="before")
    @classmethod
    def _split_refs(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)):
            return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        return value

    @field_validator("lora")
    @classmethod
    def _lora_defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {**LORA_DEFAULTS, **value}

    @field_validator("quantization")
    @classmethod
    def _quantization_defaults(cls, value: dict[str, Any]) -> dict[str, Any]:
        return {**QUANTIZATION_DEFAULTS, **value}

    @classmethod
    def open_sections(cls) -> dict[str, Iterable[str]]:
        """The library sections' keys, so `--set r=8` means lora.r and `--set max_steps=3` training.max_steps."""
        from peft import LoraConfig
        from transformers import BitsAndBytesConfig
        from trl import DPOConfig, SFTConfig

        training = (_dataclass_fields(SFTConfig) | _dataclass_fields(DPOConfig)) - set(OWNED_TRAINING_KEYS)
        return {"lora": _dataclass_fields(LoraConfig), "quantization": _init_params(BitsAndBytesConfig),
                "training": training}

    # -- what goes into factory.json ------------------------------------------------------------------
    def recorded(self) -> dict[str, Any]:
        """The config as stored in a checkpoint: secrets redacted, `out` left out (where, not what)."""
        return redact(self.model_dump(mode="json", exclude={"out"}))

    def config_hash(self) -> str:
        return short_digest(self.recorded())

    def identity_hash(self) -> str:
        """Hash of what is trained; a resumed run must match it (the step budget or logging may change)."""
        return short_digest({k: v for k, v in self.recorded().items() if k in IDENTITY_KEYS})

    def require(self) -> None:
        """The keys a run cannot do without, named as the command line names them."""
        for key, flag in (("method", "a method (factory train sft|dpo)"), ("model", "--model"),
                          ("out", "--out")):
            if not getattr(self, key):
                raise BadInput(f"missing {flag} (or `{key}:` in the --config file)")
        if not self.data:
            raise BadInput("missing --data (or `data:` in the --config file)")

    # -- the library objects ---------------------------------------------------------------------------
    def check_sections(self, training_class: type) -> None:
        """Refuse keys the libraries do not know, before anything is loaded or written."""
        from peft import LoraConfig

        _check_keys("lora", self.lora, _dataclass_fields(LoraConfig), "peft.LoraConfig")
        if self.tuning == "qlora":
            from transformers import BitsAndBytesConfig

            _check_keys("quantization", self.quantization, _init_params(BitsAndBytesConfig),
                        "transformers.BitsAndBytesConfig")
        for key, flag in OWNED_TRAINING_KEYS.items():
            if key in self.training:
                raise BadInput(f"config: training.{key} is set by factory; use {flag}")
        _check_keys("training", self.training, _dataclass_fields(training_class), f"trl.{training_class.__name__}")
        _check_ranges("training", _coerce(training_class, self.training, "training"), TRAINING_RANGES)
        _check_ranges("lora", _coerce(LoraConfig, self.lora, "lora"), LORA_RANGES)

    def lora_config(self, trainable_tokens: list[int] | None = None) -> Any:
        """peft.LoraConfig; tokens added for a chat template get trainable embedding rows (as TRL does)."""
        from peft import LoraConfig

        kwargs = _coerce(LoraConfig, self.lora, "lora")
        if trainable_tokens:
            given = kwargs.get("trainable_token_indices") or {}
            indices = dict(given) if isinstance(given, dict) else {"embed_tokens": list(given)}
            indices["embed_tokens"] = sorted({*indices.get("embed_tokens", []), *trainable_tokens})
            kwargs["trainable_token_indices"] = indices
        try:
            return LoraConfig(**kwargs)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"config: lora: {exc}") from None

    def bnb_config(self) -> Any:
        """transformers.BitsAndBytesConfig for QLoRA (builds without CUDA; loading a model with it needs CUDA)."""
        import torch
        from transformers import BitsAndBytesConfig

        kwargs = dict(self.quantization)
        for key in ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage"):
            if isinstance(kwargs.get(key), str) and hasattr(torch, kwargs[key]):
                kwargs[key] = getattr(torch, kwargs[key])
        try:
            return BitsAndBytesConfig(**kwargs)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"config: quantization: {exc}") from None

    def training_args(self, training_class: type, output_dir: str, *, defaults: dict[str, Any], on_cpu: bool,
                      quiet: bool) -> Any:
        """trl.SFTConfig / trl.DPOConfig: method defaults < CPU rules < the user's `training` section."""
        fields = _dataclass_fields(training_class)
        base: dict[str, Any] = {"report_to": [], **defaults}
        if on_cpu:
            base.update(use_cpu=True, bf16=False, fp16=False)
            # transformers >= 5.2 renamed gradient_checkpointing; setting the old name only warns.
            renamed = "activation_checkpointing" in fields
            base["activation_checkpointing" if renamed else "gradient_checkpointing"] = False
        if quiet:
            base.update(disable_tqdm=True, log_level="error")
        kwargs = {**base, **_coerce(training_class, self.training, "training"), "output_dir": output_dir}
        try:
            return training_class(**kwargs)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"config: training: {exc}") from None


# key -> (check, what it must be): values the libraries would accept and then fail on (or train nonsense with)
_POSITIVE = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_NON_NEGATIVE = (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
LORA_RANGES = {"r": (lambda v: v >= 1, "an integer >= 1"), "lora_alpha": _POSITIVE,
               "lora_dropout": (lambda v: 0 <= v < 1, "in [0, 1)")}
TRAINING_RANGES = {
    "learning_rate": _POSITIVE, "num_train_epochs": _POSITIVE, "weight_decay": _NON_NEGATIVE,
    "warmup_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"), "max_grad_norm": _NON_NEGATIVE,
    "max_steps": (lambda v: v == -1 or v >= 1, "-1 (use epochs) or an integer >= 1"),
    "per_device_train_batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, "an integer >= 1"),
    "beta": _POSITIVE,
}


def _check_ranges(section: str, values: dict[str, Any], ranges: dict[str, tuple[Any, str]]) -> None:
    for key, (ok, what) in ranges.items():
        value = values.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise BadInput(f"config: {section}.{key}: must be {what}, got {value!r}")


def _dataclass_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _init_params(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}


def _coerce(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """Each value as the library field's type takes it, checked by pydantic against the dataclass's annotations.

    YAML reads `1e-4` (no dot) as text: a float field gets the number. YAML 1.1 reads `no` as false: a field
    that takes no bool (save_strategy) gets the word. A value no reading fits is an error naming the key, for
    the fields that take only numbers or bools; for the others the library has the last word.
    """
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    hints = _type_hints(cls)
    out = dict(values)
    for key, value in values.items():
        if key not in hints:
            continue
        try:
            adapter = TypeAdapter(hints[key], config=ConfigDict(arbitrary_types_allowed=True))
        except Exception:  # a type pydantic cannot check: the library's own checks apply
            continue
        readings = [value, "no"] if value is False else [value]
        for reading in readings:
            try:
                checked = adapter.validate_python(reading)
            except ValidationError:
                continue
            # numbers from text; anything else as given (an enum member would read back the same)
            out[key] = checked if isinstance(checked, (int, float)) and isinstance(reading, str) else reading
            break
        else:
            if _only_scalars(hints[key]):
                raise BadInput(f"config: {section}.{key}: expected a number, got {value!r}")
    return out


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: no coercion rather than a crash
        return {}


def _only_scalars(hint: Any) -> bool:
    """Whether a field takes nothing but numbers or bools (None aside)."""
    args = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    return bool(args) and all(a in (int, float, bool) for a in args)


def _check_keys(section: str, given: dict[str, Any], known: set[str], what: str) -> None:
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BadInput(f"config: unknown key '{section}.{key}' (not an option of {what}){hint}")
