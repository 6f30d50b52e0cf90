"""DPO through TRL's `DPOTrainer` on `prompt`/`chosen`/`rejected` data.

The reference model is the one DPO needs: with a LoRA/QLoRA adapter, TRL uses the same model with the adapter
disabled; full-parameter DPO gets an explicit frozen copy of the starting weights. `beta`, `loss_type` and
every other `DPOConfig` option pass through the `training` section. HH-RLHF-style dialogues are converted by
a dataset stage (`factory datasets convert hh-rlhf`), not here.
"""

from __future__ import annotations

import copy
from typing import Any

from factory import papers
from factory.trainers.data import DPO

METHOD = "dpo"
FORMAT = DPO
PAPERS = (papers.DPO,)


def config_class() -> type:
    from trl import DPOConfig

    return DPOConfig


def training_defaults(tuning: str) -> dict[str, Any]:
    return {}  # TRL's own (learning rate 1e-6, beta 0.1, sigmoid loss): DPO is meant to move the model a little


def make_trainer(model: Any, tokenizer: Any, dataset: Any, args: Any, peft_config: Any, *, user_training: dict,
                 tuning: str) -> Any:
    from trl import DPOTrainer

    ref_model = None
    if peft_config is None and tuning == "full":
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    return DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=dataset,
                      processing_class=tokenizer, peft_config=peft_config)
