"""`factory train sft --model local`: the embedded model is a base model too, offline on CPU, named by its Hub id."""

from __future__ import annotations

import json

import pytest

from factory.store import Store
from tests.helpers import run_factory


@pytest.mark.slow
def test_train_sft_on_the_embedded_model_offline(tmp_path):
    home = tmp_path / "home"
    assert run_factory("datasets", "import", "seeds:dolly", "--name", "d", home=home).returncode == 0
    assert run_factory("datasets", "convert", "sft", "d", "--name", "d-sft", home=home).returncode == 0
    out = tmp_path / "ckpt"
    env = {"HF_HUB_OFFLINE": "1"}  # any attempt to reach the Hub fails at once
    r = run_factory("train", "sft", "--model", "local", "--data", "d-sft", "--out", str(out), "--set", "max_steps=1",
                    "--set", "training.per_device_train_batch_size=2", home=home, env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "factory.json").read_text())
    assert doc["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and doc["base_model_source"] == "local"
    assert doc["metrics"]["steps"] == 1
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # loads anywhere
    from safetensors.torch import load_file

    weights = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # LoRA B starts at zero: the step changed it
    assert str(tmp_path) not in (out / "factory.json").read_text()
    assert not (home / "models").exists()  # the conversion lives in the user's cache, not in each store
    assert Store(home).resolve("d-sft").manifest.rows > 0


def test_model_aliases_are_checked_before_anything_loads(tmp_path):
    home = tmp_path / "home"
    assert run_factory("datasets", "import", "seeds:dolly", "--name", "d", home=home).returncode == 0
    r = run_factory("train", "sft", "--model", "gpt4o", "--data", "d", "--out", str(tmp_path / "x"), home=home)
    assert r.returncode == 2 and "an API model" in r.stderr, r.stderr
