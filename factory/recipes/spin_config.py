"""The SPIN loop's config: one pydantic model, per-iteration overrides, and the paper's settings as defaults.

    model: ckpt/sft                # model_0: an SFT model with a chat template (local dir or Hub id)
    data: sft-data                 # the SFT dataset whose answers are the ground truth
    out: ckpt/spin                 # DIR/iter_0, DIR/iter_1, ... and DIR/spin.json
    iterations: 3                  # K; or a list of per-iteration overrides (K = its length)
    mix: previous                  # iteration t trains on its pairs + iteration t-1's (paper); none | all
    generation: {temperature: 0.8, top_p: 0.95, max_tokens: 256}   # the self-play scheme's settings
    training: {beta: 0.1, learning_rate: 5.0e-7}                   # any trl.DPOConfig field
    schedule: {2: {learning_rate: 1.0e-7}, 3: {beta: 5.0}}        # or --set iterations.3.beta=5.0
    eval: {fraction: 0.1, mt_bench_judge: claude}                  # optional, per iterate: see spin_eval
    early_stop: true               # stop when an iteration's reward margin is not above the previous one's

Flat keys resolve to their section (`max_tokens=64` is `generation.max_tokens`, `max_steps=10` is
`training.max_steps`; the self-play scheme's keys win over DPO's, so `seed` is the sampling seed), at the top
level and in each iteration's overrides. An iteration's config is the base config with its overrides merged in,
validated by the same model, so a typo in an override is an error naming the key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from factory.config import StrictModel, deep_merge, parse_sets, read_yaml, validation_message
from factory.errors import BadInput
from factory.hashing import short_digest
from factory.recipes.spin_eval import SpinEvalConfig
from factory.schemes.self_play import SelfPlayConfig

# The paper's training recipe (uclaml/SPIN configs), where DPOConfig has the knob. `logging_strategy: epoch`
# makes TRL's last log the mean over the iteration's last epoch: the per-iteration metrics.
SPIN_TRAINING: dict[str, Any] = {"beta": 0.1, "learning_rate": 5e-7, "optim": "rmsprop", "weight_decay": 0.0,
                                 "warmup_steps": 0.1, "num_train_epochs": 2, "max_length": 1024,
                                 "logging_strategy": "epoch"}
# What may differ between iterations (the paper lowers the learning rate and raises beta as it goes).
PER_ITERATION = ("generation", "training", "mix")
# Where the run is written or how long it runs: not part of what an iteration is.
# (`eval.fraction` changes the training rows, and so `data`, which is part of the identity.)
NOT_IDENTITY = ("out", "iterations", "schedule", "early_stop", "batch_size", "eval")


class SpinConfig(StrictModel):
    """What to self-play, from what, and how each iteration generates and trains."""

    model: str | None = Field(None, description="model_0: the SFT model (local directory or Hub id)")
    data: str | None = Field(None, description="the SFT dataset (messages, or instruction/response)")
    out: str | None = Field(None, description="directory for iter_<t>/ checkpoints and spin.json")
    iterations: int | None = Field(None, description="number of SPIN iterations K")
    schedule: dict[int, dict[str, Any]] = Field(default_factory=dict,
                                                description="iteration -> overrides (generation, training, mix)")
    n: int | None = Field(None, ge=1, description="use only the first N rows of the SFT dataset")
    name: str | None = Field(None, description="dataset name of the pairs (default spin-<data>); +'-iter<t>'")
    mix: Literal["none", "previous", "all"] = Field(
        "previous", description="train iteration t on its pairs only, plus iteration t-1's (paper), or all so far")
    tuning: Literal["lora", "full"] = Field("lora", description="a fresh LoRA on model_t, merged; or all weights")
    engine: Literal["hf", "vllm"] = Field("hf", description="LLM provider that generates with model_t")
    batch_size: int = Field(16, ge=1, description="prompts per batch for local generation")
    chat_template: str = Field("none", description="for a model without one: chatml or a .jinja file")
    early_stop: bool = Field(False, description="stop when an iteration's reward margin is not above the last's")
    eval: SpinEvalConfig = Field(default_factory=SpinEvalConfig, description="optional evaluation of every iterate")
    generation: SelfPlayConfig = Field(default_factory=SelfPlayConfig)
    training: dict[str, Any] = Field(default_factory=dict, description="trl.DPOConfig fields")
    lora: dict[str, Any] = Field(default_factory=dict, description="peft.LoraConfig fields")
    model_init: dict[str, Any] = Field(default_factory=dict, description="from_pretrained keyword arguments")

    def require(self) -> None:
        for key, flag in (("model", "--model"), ("data", "--data"), ("out", "--out"), ("iterations", "--iterations")):
            if getattr(self, key) is None:
                raise BadInput(f"missing {flag} (or `{key}:` in the --config file)")
        if self.iterations < 1:
            raise BadInput(f"--iterations must be at least 1, got {self.iterations}")
        beyond = sorted(t for t in self.schedule if t >= self.iterations)
        if beyond:  # a paper's 4-iteration schedule run for 2 iterations: fine, but say so
            import logging

            logging.getLogger(__name__).warning(
                "SPIN runs %d iterations (0-%d): the settings for iteration %s are not used", self.iterations,
                self.iterations - 1, ", ".join(map(str, beyond)))

    def at(self, t: int) -> SpinConfig:
        """Iteration t's config: the base with `schedule[t]` merged in (validated like the base)."""
        override = self.schedule.get(t) or {}
        if not override:
            return self
        data = deep_merge(self.model_dump(), override)
        try:
            return SpinConfig.model_validate(data)
        except ValidationError as exc:
            raise BadInput(validation_message(exc, f"config: iterations.{t}")) from None

    def train_settings(self) -> dict[str, Any]:
        """The DPO `training` section: the paper's recipe under the user's keys."""
        return {**SPIN_TRAINING, **self.training}

    def identity(self, t: int) -> str:
        """What iteration t is (model_0, data, its settings): a finished iteration must match it to be kept."""
        doc = self.at(t).model_dump(mode="json", exclude=set(NOT_IDENTITY))
        return short_digest({**doc, "training": self.at(t).train_settings(), "iteration": t})


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """YAML/--set input to the model's shape: `iterations` as a list or mapping becomes `schedule`, and flat keys
    go to their section, at the top and in every iteration's overrides."""
    data = resolve_flat(dict(data))
    its = data.get("iterations")
    if isinstance(its, list):
        data["schedule"] = deep_merge(dict(enumerate(its)), data.get("schedule") or {})
        data["iterations"] = len(its)
    elif isinstance(its, dict):
        data["schedule"] = deep_merge(data.get("schedule") or {}, its)
        data.pop("iterations")
    schedule = data.get("schedule")
    if isinstance(schedule, dict):
        fixed = {}
        for key, value in schedule.items():
            if not str(key).isdigit():
                raise BadInput(f"config: iterations.{key}: iterations are numbered 0, 1, 2, ...")
            if not isinstance(value, dict):
                raise BadInput(f"config: iterations.{key}: expected a mapping of settings, got {value!r}")
            value = resolve_flat(value, allowed=PER_ITERATION)
            fixed[int(key)] = deep_merge(fixed.get(int(key), {}), value)
        data["schedule"] = fixed
    return data


def resolve_flat(data: dict[str, Any], allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """{"max_tokens": 64, "max_steps": 10} -> {"generation": {"max_tokens": 64}, "training": {"max_steps": 10}}."""
    own = set(SpinConfig.model_fields) | {"iterations"}
    generation = set(SelfPlayConfig.model_fields)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in own:
            section, inner = key, None
        else:
            section, inner = ("generation" if key in generation else "training"), key
        if allowed is not None and section not in allowed:
            raise BadInput(f"config: {key!r} cannot change between iterations (per iteration: generation and "
                           "training settings, mix)")
        if inner is None:
            out[key] = deep_merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) \
                else value
        else:
            out.setdefault(section, {})
            out[section][inner] = value
    return out


def load_spin_config(file: str | None, sets: tuple[str, ...] | list[str], **given: Any) -> SpinConfig:
    """defaults < --config FILE < --set flags < the command's own options (those given)."""
    data = deep_merge(normalize(read_yaml(file)) if file else {}, normalize(parse_sets(sets)))
    for key, value in given.items():
        if isinstance(value, dict):  # a command's options for a section (--eval ... -> eval.heldout)
            value = {k: v for k, v in value.items() if v not in (None, [], ())}
            data[key] = deep_merge(data.get(key) or {}, value) if isinstance(data.get(key), dict) else value
        elif value is not None:
            data[key] = value
    try:
        return SpinConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInput(validation_message(exc)) from None
