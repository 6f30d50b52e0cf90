"""`factory train sft|dpo`: fine-tune a model on dataset versions through TRL and PEFT."""

from factory.cli._pending import pending_command

train = pending_command(
    "train", "Fine-tune a model (SFT, sequential SFT, DPO; LoRA, QLoRA or full) on dataset versions.",
    "factory train sft --model BASE --data evol-instruct,orca --out ckpt/sft")
