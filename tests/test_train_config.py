"""Training configs: mapping onto TRL/PEFT/transformers objects, pass-through, QLoRA without CUDA, recipes."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from factory.errors import BadInput
from factory.trainers.config import TrainConfig
from factory.trainers.run import load_config, settle_tuning
from tests.test_train_sft import (
    FAST,
    chat_rows,
    check_record,
    import_rows,
    invoke,
    one_thread,  # noqa: F401  (autouse fixture)
)


def test_sections_map_onto_the_library_objects():
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import DPOConfig, SFTConfig

    sets = ["lora.r=4", "lora.use_rslora=true", "training.learning_rate=1e-4", "training.beta=0.3",
            "training.loss_type=ipo", "training.save_strategy=no", "quantization.bnb_4bit_quant_type=fp4"]
    cfg = load_config(None, sets, method="dpo", model="m", data=["a,b", "c"], out="o")
    assert cfg.data == ["a", "b", "c"]
    cfg.check_sections(DPOConfig)
    lora = cfg.lora_config()
    assert isinstance(lora, LoraConfig) and lora.r == 4 and lora.use_rslora and lora.lora_alpha == 32
    assert lora.target_modules == "all-linear"
    args = cfg.training_args(DPOConfig, "/tmp/x", defaults={"learning_rate": 9.0}, on_cpu=True, quiet=True)
    assert isinstance(args, DPOConfig) and args.learning_rate == 1e-4 and args.beta == 0.3  # user over defaults
    assert args.loss_type == ["ipo"] and args.save_strategy == "no" and args.use_cpu and not args.bf16
    assert args.disable_tqdm and args.report_to == [] and not args.gradient_checkpointing
    bnb = cfg.bnb_config()  # QLoRA config builds on CPU; only loading a model with it needs CUDA
    assert isinstance(bnb, BitsAndBytesConfig) and bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "fp4"
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16 and bnb.bnb_4bit_use_double_quant
    with pytest.raises(BadInput, match="unknown key 'training.beta'"):
        cfg.check_sections(SFTConfig)  # beta is DPO's, not SFT's


@pytest.mark.parametrize("sets, message", [
    (["lora.rank=4"], "unknown key 'lora.rank' (not an option of peft.LoraConfig)"),
    (["training.lerning_rate=1"], "did you mean 'learning_rate'?"),
    (["training.output_dir=x"], "training.output_dir is set by factory; use --out"),
    (["training.max_steps=many"], "training.max_steps: expected a number, got 'many'"),
    (["tuning=qlora", "quantization.load_in_3bit=true"], "unknown key 'quantization.load_in_3bit'"),
])
def test_unknown_or_bad_section_keys_are_named(sets, message):
    from trl import SFTConfig

    cfg = load_config(None, sets, method="sft", model="m", data=["a"], out="o")
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        cfg.check_sections(SFTConfig)


def test_config_hash_follows_the_config_and_redacts_secrets():
    a = TrainConfig(method="sft", model="m", data=["x@1"], out="o1", model_init={"token": "hf_secret_value"})
    b = TrainConfig(method="sft", model="m", data=["x@1"], out="o2", model_init={"token": "hf_secret_value"})
    assert a.config_hash() == b.config_hash()  # where it is written is not what it is
    assert "hf_secret_value" not in json.dumps(a.recorded())
    c = a.model_copy(update={"training": {"max_steps": 5}})
    assert c.config_hash() != a.config_hash() and c.identity_hash() == a.identity_hash()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on machines without CUDA")
def test_qlora_without_cuda_is_an_error_or_a_lora_fallback():
    with pytest.raises(BadInput, match="needs a CUDA GPU.*qlora_fallback=lora"):
        settle_tuning(TrainConfig(tuning="qlora"))
    tuning, notes = settle_tuning(TrainConfig(tuning="qlora", qlora_fallback="lora"))
    assert tuning == "lora" and "trained plain LoRA instead" in notes[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on machines without CUDA")
def test_qlora_fallback_trains_lora_and_says_so(tmp_path, tiny_dir):
    home = tmp_path / "home"
    ref = import_rows(home, tmp_path, "chat", chat_rows(8))
    out = tmp_path / "out"
    r = invoke(home, "-q", "train", "sft", "--model", str(tiny_dir), "--data", ref, "--out", str(out), *FAST,
               "--set", "tuning=qlora", "--set", "qlora_fallback=lora")
    assert r.exit_code == 0, r.output
    doc = check_record(out, "sft", tiny_dir, [ref], adapter=True)
    assert doc["tuning"] == "lora" and doc["config"]["tuning"] == "qlora" and "CUDA" in doc["notes"][0]


def test_a_recipe_names_the_method(tmp_path, tiny_dir):
    home = tmp_path / "home"
    ref = import_rows(home, tmp_path, "chat", chat_rows(8))
    out = tmp_path / "ckpt"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "method": "sft", "model": str(tiny_dir), "data": [ref], "out": str(out), "tuning": "full",
        "training": {"max_steps": 3, "learning_rate": "1e-3", "save_strategy": "no", "per_device_train_batch_size": 4},
    }))
    r = invoke(home, "-q", "train", "--config", str(recipe))
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and r.stdout == f"{out.absolute()}\n"  # -q: no progress bar, no log lines
    doc = check_record(out, "sft", tiny_dir, [ref], adapter=False)
    assert doc["config"]["training"]["learning_rate"] == "1e-3"  # as written; TRL got the number:
    assert json.loads((out / "training_args.json").read_text())["learning_rate"] == 1e-3
    clash = invoke(home, "train", "dpo", "--config", str(recipe), "--out", str(tmp_path / "other"))
    assert clash.exit_code == 2 and "the config says method: sft" in clash.stderr
