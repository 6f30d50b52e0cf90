"""`factory train dpo` on a tiny Llama (CPU): LoRA (adapter-disabled reference) and full (frozen copy).

The LoRA run trains on the shipped HH-RLHF seed set after the `hh-rlhf` conversion stage, so the whole path a
user takes (import, convert, train) is exercised; the full run uses TRL's standard (text) preference format.
"""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from factory.store import Store
from tests.test_train_sft import (
    base_model,
    changed_tensors,
    check_record,
    generates,
    import_rows,
    invoke,
    load_checkpoint,
    logits,
    one_thread,  # noqa: F401  (autouse fixture)
    preference_rows,
    train,
)


def test_dpo_lora_on_converted_hh_rlhf(tmp_path, tiny_dir):
    home = tmp_path / "home"
    assert invoke(home, "datasets", "import", "seeds:hh", "--name", "hh").exit_code == 0
    r = invoke(home, "datasets", "convert", "hh-rlhf", "hh", "--name", "hh-dpo")
    assert r.exit_code == 0, r.output
    ref = r.stdout.strip()
    out = tmp_path / "dpo"
    train(home, "dpo", tiny_dir, "hh-dpo", out, "--set", "training.learning_rate=5e-3", "--set", "training.beta=0.5",
          "--set", "training.loss_type=hinge", "--set", "training.per_device_train_batch_size=2")
    doc = check_record(out, "dpo", tiny_dir, [ref], adapter=True)
    assert Store(home).resolve(ref).manifest.inputs[0].name == "hh"  # lineage continues through the stage
    args = json.loads((out / "training_args.json").read_text())
    assert args["beta"] == 0.5 and args["loss_type"] == ["hinge"]  # passed through to TRL
    assert "rewards/margins" in doc["metrics"]
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())
    model, tok = load_checkpoint(out)
    assert not torch.allclose(logits(model, tok), logits(base_model(tiny_dir), tok))
    generates(model, tok)


def test_full_dpo_with_a_frozen_reference(tmp_path, tiny_dir):
    home = tmp_path / "home"
    ref = import_rows(home, tmp_path, "prefs", preference_rows(8, conversational=False))
    out = tmp_path / "dpo-full"
    train(home, "dpo", tiny_dir, ref, out, "--set", "tuning=full", "--set", "training.learning_rate=1e-3")
    doc = check_record(out, "dpo", tiny_dir, [ref], adapter=False)
    # A reference that moved with the policy would keep every reward at exactly 0.
    assert doc["metrics"]["rewards/margins"] != 0
    changed = changed_tensors(tiny_dir, out)
    assert any("mlp" in k for k in changed) and any("lm_head" in k for k in changed)
    model, tok = load_checkpoint(out)
    generates(model, tok)
