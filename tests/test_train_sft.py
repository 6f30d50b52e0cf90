"""`factory train sft` on a tiny Llama (CPU): LoRA, full, sequential, chat templates, merge-adapter.

Datasets go in through the store (`factory datasets import`); each run goes through the CLI; checkpoints are
read back with transformers/peft and must generate. The helpers here are shared with the other train tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from factory.cli.main import cli
from tests.helpers import write_jsonl


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test process: a tiny model gains nothing from two, and on a shared 2-core CI machine
    two threads contending with other work made training steps ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FAST = ["--set", "training.max_steps=3", "--set", "training.per_device_train_batch_size=4",
        "--set", "training.logging_steps=1", "--set", "training.save_strategy=no", "--set", "training.max_length=64"]
VERSION_KEYS = {"factory", "trl", "peft", "transformers", "torch"}


def chat_rows(n: int, topic: str = "plus") -> list[dict]:
    return [{"id": f"{topic}-{i}", "messages": [{"role": "user", "content": f"What is {i} {topic} {i}?"},
                                                {"role": "assistant", "content": f"{i} {topic} {i} is {i + i}."}]}
            for i in range(n)]


def preference_rows(n: int, conversational: bool = True) -> list[dict]:
    rows = []
    for i in range(n):
        prompt, good, bad = f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}.", "I do not know, go away."
        if conversational:
            rows.append({"id": str(i), "prompt": [{"role": "user", "content": prompt}],
                         "chosen": [{"role": "assistant", "content": good}],
                         "rejected": [{"role": "assistant", "content": bad}]})
        else:
            rows.append({"id": str(i), "prompt": prompt, "chosen": " " + good, "rejected": " " + bad})
    return rows


def invoke(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def import_rows(home: Path, tmp_path: Path, name: str, rows: list[dict]) -> str:
    """Rows into the store as a dataset version, as a user imports them; returns NAME@VERSION."""
    r = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / f"{name}.jsonl", rows)), "--name", name)
    assert r.exit_code == 0, r.output
    return r.stdout.strip().splitlines()[-1]


def train(home: Path, method: str, model: Path, data: str, out: Path, *extra: str, quiet: bool = True):
    args = (["-q"] if quiet else []) + ["train", method, "--model", str(model), "--data", data, "--out", str(out)]
    r = invoke(home, *args, *FAST, *extra)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(out.absolute())  # TRL's log lines go to stderr
    return r


def check_record(out: Path, method: str, base: Path, refs: list[str], adapter: bool) -> dict:
    """factory.json: the contract keys, lineage naming the exact dataset versions, and a finite loss."""
    doc = json.loads((out / "factory.json").read_text())
    assert doc["kind"] == "checkpoint" and doc["method"] == method and doc["adapter"] is adapter
    assert doc["base_model"] == str(base)
    assert doc["datasets"] == [{"name": r.split("@")[0], "version": r.split("@")[1]} for r in refs]
    assert set(doc["versions"]) == VERSION_KEYS and doc["versions"]["trl"] and doc["eval"] == {}
    assert len(doc["config_hash"]) == 12 and doc["config"]["data"] == refs and doc["created"].endswith("Z")
    assert math.isfinite(doc["metrics"]["train_loss"]) and doc["metrics"]["steps"] >= 3
    assert (out / "adapter_config.json").is_file() is adapter
    assert (out / "training_args.json").is_file() and (out / "generation_config.json").is_file()
    assert not list(out.glob("checkpoint-*")) and not out.with_name(out.name + ".partial").exists()
    if method != "sft-sequential":  # each stage keeps its own log, in its stage directory
        assert json.loads((out / "trainer_state.json").read_text())["log_history"]  # the loss `factory view` plots
    return doc


def load_checkpoint(out: Path):
    """Load a checkpoint the way a user would: peft for an adapter, transformers for full weights."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    cls = AutoPeftModelForCausalLM if (out / "adapter_config.json").is_file() else AutoModelForCausalLM
    return cls.from_pretrained(str(out)).eval(), tok


def generates(model, tok) -> str:
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 plus 2?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=6, min_new_tokens=2, do_sample=False)
    new = out[0, ids["input_ids"].shape[1]:]
    assert new.numel() >= 2
    return tok.decode(new)


def logits(model, tok) -> torch.Tensor:
    ids = tok("What is 3 plus 3?", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def base_model(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path)).eval()


def changed_tensors(base: Path, out: Path) -> list[str]:
    before, after = load_file(str(base / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(before) == set(after)
    return [k for k in before if not torch.equal(before[k], after[k])]


# -- tests ---------------------------------------------------------------------------------------------
def test_sft_lora_trains_saves_reloads_generates_and_merges(tmp_path, tiny_dir):
    home = tmp_path / "home"
    ref = import_rows(home, tmp_path, "chat", chat_rows(12))
    out = tmp_path / "ckpt" / "sft"
    r = train(home, "sft", tiny_dir, "chat", out, "--set", "training.learning_rate=1e-2", quiet=False)
    assert "'loss'" in r.stderr and "trained sft (lora)" in r.stderr  # TRL's progress with its loss lines
    doc = check_record(out, "sft", tiny_dir, [ref], adapter=True)
    assert doc["config"]["lora"]["target_modules"] == "all-linear" and doc["tuning"] == "lora"
    args = json.loads((out / "training_args.json").read_text())
    assert args["use_cpu"] is True and args["assistant_only_loss"] is True  # the tiny template has generation tags

    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())  # lora_B starts at zero
    model, tok = load_checkpoint(out)
    base = base_model(tiny_dir)
    assert not torch.allclose(logits(model, tok), logits(base, tok))
    generates(model, tok)

    merged = tmp_path / "ckpt" / "merged"
    m = invoke(home, "train", "merge-adapter", str(out), "--out", str(merged))
    assert m.exit_code == 0, m.output
    full, tok2 = load_checkpoint(merged)
    assert torch.allclose(logits(full, tok2), logits(model, tok), atol=1e-4)
    merged_doc = json.loads((merged / "factory.json").read_text())
    assert merged_doc["adapter"] is False and merged_doc["datasets"] == doc["datasets"]
    assert merged_doc["merged_from"]["config_hash"] == doc["config_hash"]
    again = invoke(home, "train", "merge-adapter", str(merged), "--out", str(tmp_path / "twice"))
    assert again.exit_code == 2 and "holds full weights (nothing to merge)" in again.stderr
    assert not (tmp_path / "twice").exists()


def test_full_sft_changes_the_weights(tmp_path, tiny_dir):
    home = tmp_path / "home"
    ref = import_rows(home, tmp_path, "chat", chat_rows(8))
    out = tmp_path / "full"
    train(home, "sft", tiny_dir, ref, out, "--set", "tuning=full", "--set", "training.learning_rate=1e-3")
    check_record(out, "sft", tiny_dir, [ref], adapter=False)
    changed = changed_tensors(tiny_dir, out)
    assert any("layers.0.self_attn.q_proj" in k for k in changed) and any("embed_tokens" in k for k in changed)
    model, tok = load_checkpoint(out)
    generates(model, tok)


def test_sequential_sft_over_two_versions_saves_each_stage(tmp_path, tiny_dir):
    home = tmp_path / "home"
    first = import_rows(home, tmp_path, "chat", chat_rows(8))
    second = import_rows(home, tmp_path, "chat", chat_rows(8, topic="times"))  # a second version of `chat`
    assert first != second
    out = tmp_path / "seq"
    train(home, "sft", tiny_dir, f"{first},{second}", out, "--set", "training.learning_rate=1e-2")
    doc = check_record(out, "sft-sequential", tiny_dir, [first, second], adapter=False)  # merge mode: full weights
    assert [s["subdir"] for s in doc["stages"]] == ["stage-1-chat", "stage-2-chat"]
    assert [s["dataset"]["version"] for s in doc["stages"]] == [first.split("@")[1], second.split("@")[1]]
    stage1, stage2 = out / "stage-1-chat", out / "stage-2-chat"
    s1 = json.loads((stage1 / "factory.json").read_text())
    assert s1["datasets"] == doc["datasets"][:1] and len(s1["stages"]) == 1 and s1["adapter"] is False
    assert changed_tensors(tiny_dir, stage1) and changed_tensors(stage1, stage2)  # stage 2 moved on from stage 1
    assert (out / "model.safetensors").read_bytes() == (stage2 / "model.safetensors").read_bytes()
    assert doc["metrics"]["total_steps"] == sum(s["metrics"]["steps"] for s in doc["stages"])
    model, tok = load_checkpoint(out)
    generates(model, tok)


def test_sequential_continue_keeps_one_adapter(tmp_path, tiny_dir):
    home = tmp_path / "home"
    a = import_rows(home, tmp_path, "a", chat_rows(6))
    b = import_rows(home, tmp_path, "b", chat_rows(6, topic="minus"))
    out = tmp_path / "cont"
    train(home, "sft", tiny_dir, "a,b", out, "--set", "sequential=continue", "--set", "training.learning_rate=1e-2")
    doc = check_record(out, "sft-sequential", tiny_dir, [a, b], adapter=True)
    w1 = load_file(str(out / "stage-1-a" / "adapter_model.safetensors"))
    w2 = load_file(str(out / "adapter_model.safetensors"))
    assert any(not torch.equal(w1[k], w2[k]) for k in w1) and all(s["adapter"] for s in doc["stages"])
    model, tok = load_checkpoint(out)
    generates(model, tok)


def _template_less_base(path: Path) -> Path:
    """A tiny Llama whose tokenizer has no chat template and no ChatML tokens: a plain base model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from factory.testing.tiny import corpus

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus(), trainer=trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, vocab_size=len(tok), pad_token_id=0, bos_token_id=1,
                                         eos_token_id=2))
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


@pytest.mark.parametrize("tuning", ["lora", "full"])
def test_a_base_model_without_chat_template_gets_chatml(tmp_path, tuning):
    base = _template_less_base(tmp_path / "base")
    home = tmp_path / "home"
    ref = import_rows(home, tmp_path, "chat", chat_rows(8))
    out = tmp_path / "out"
    train(home, "sft", base, ref, out, "--set", f"tuning={tuning}", "--set", "training.learning_rate=1e-2")
    check_record(out, "sft", base, [ref], adapter=tuning == "lora")
    model, tok = load_checkpoint(out)
    assert "<|im_start|>" in tok.chat_template and tok.eos_token == "<|im_end|>"
    assert model.config.vocab_size == len(tok) == 300 + 2  # embeddings grown for the ChatML tokens
    if tuning == "lora":
        config = json.loads((out / "adapter_config.json").read_text())
        assert sorted(config["trainable_token_indices"]["embed_tokens"]) == [300, 301]
    generates(model, tok)


def test_max_length_that_cuts_off_every_answer_is_a_clear_error(tmp_path, tiny_dir):
    home = tmp_path / "home"
    long = [{"messages": [{"role": "user", "content": "Please explain, in detail, " * 4 + f"case {i}."},
                          {"role": "assistant", "content": f"Case {i} is simple."}]} for i in range(4)]
    ref = import_rows(home, tmp_path, "long", long)
    out = tmp_path / "out"
    r = invoke(home, "-q", "train", "sft", "--model", str(tiny_dir), "--data", ref, "--out", str(out), *FAST,
               "--set", "chat_template=openbezoar", "--set", "training.max_length=16")
    assert r.exit_code == 2, r.output
    assert f"no training example is left of the 4 rows of {ref}" in r.output
    assert "raise training.max_length" in r.output
    assert "Traceback" not in r.output and not out.exists()
    fixed = invoke(home, "-q", "train", "sft", "--model", str(tiny_dir), "--data", ref, "--out", str(out), *FAST,
                   "--set", "chat_template=openbezoar", "--set", "training.max_length=400")
    assert fixed.exit_code == 0, fixed.output  # the failed start left nothing in the way
