"""Thin trainer adapters over TRL and PEFT: SFT (LoRA, QLoRA, full), sequential SFT and DPO.

They map a `TrainConfig` onto TRL's `SFTConfig`/`DPOConfig` and PEFT's `LoraConfig`, feed TRL our dataset
versions in its formats (`messages`; `prompt`/`chosen`/`rejected`), and write checkpoint directories with a
`factory.json` lineage record. No training loop of our own: TRL has one.

    from factory.trainers import TrainConfig, run_training
    cfg = TrainConfig(method="sft", model="HuggingFaceTB/SmolLM2-135M", data=["orca"], out="ckpt/sft")
    result = run_training(store, cfg)            # -> TrainResult(out, record)

Heavy libraries (torch, transformers, trl, peft) are imported inside the functions that use them.
"""

from factory.trainers.config import TrainConfig
from factory.trainers.run import TrainResult, load_config, run_training

__all__ = ["TrainConfig", "TrainResult", "load_config", "run_training"]
