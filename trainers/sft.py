"""SFT through TRL's `SFTTrainer` on conversational `messages` data (LoRA, QLoRA or all weights).

Assistant-only loss is switched on when the chat template marks assistant turns with `{% generation %}` (or
TRL knows a training version of the template); otherwise the loss covers the whole conversation. Setting
`training.assistant_only_loss` decides it either way.
"""

from __future__ import annotations

from typing import Any

from factory.trainers.data import SFT

METHOD = "sft"
FORMAT = SFT
PAPERS = ()  # plain supervised fine-tuning: no paper of its own to cite
# TRL's SFT default (2e-5) suits full fine-tuning; LoRA adapters want about ten times more (TRL's docs, QLoRA).
ADAPTER_LEARNING_RATE = 2e-4


def config_class() -> type:
    from trl import SFTConfig

    return SFTConfig


def training_defaults(tuning: str) -> dict[str, Any]:
    return {} if tuning == "full" else {"learning_rate": ADAPTER_LEARNING_RATE}


def supports_assistant_only_loss(tokenizer: Any) -> bool:
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = tokenizer.chat_template
    if not template:
        return False
    if has_generation_markers(template):
        return True
    try:
        return get_training_chat_template(tokenizer) is not None
    except ValueError:  # TRL cannot patch this template
        return False


def make_trainer(model: Any, tokenizer: Any, dataset: Any, args: Any, peft_config: Any, *, user_training: dict,
                 tuning: str) -> Any:
    from trl import SFTTrainer

    if "assistant_only_loss" not in user_training:
        args.assistant_only_loss = supports_assistant_only_loss(tokenizer)
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config)
