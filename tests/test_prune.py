"""`factory prune` on tiny local models: the near-identity span is found and removed, the result loads and generates.

The fixture model has six blocks; blocks 2 and 3 have their output projections scaled down to almost nothing,
so they barely change the residual stream: the span 2-3 must have the smallest angular distance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from factory.cli.main import cli
from tests.helpers import write_jsonl

IDENTITY_SPAN = (2, 3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def six_block_dir(tmp_path_factory) -> Path:
    from transformers import AutoModelForCausalLM

    from factory.testing.tiny import build_tiny_llama

    path = build_tiny_llama(tmp_path_factory.mktemp("six-blocks"), num_layers=6, seed=1)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for i in IDENTITY_SPAN:  # the residual branch of these blocks adds almost nothing
            model.model.layers[i].self_attn.o_proj.weight.mul_(1e-4)
            model.model.layers[i].mlp.down_proj.weight.mul_(1e-4)
    model.save_pretrained(path)
    return path


def calib_file(tmp_path: Path) -> Path:
    from factory.testing.tiny import corpus

    return write_jsonl(tmp_path / "calib.jsonl", [{"text": line} for line in corpus()[:40]])


def invoke(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_prune_removes_the_near_identity_span_and_the_result_loads_and_generates(six_block_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "pruned"
    result = invoke(tmp_path / "home", "prune", "--model", str(six_block_dir), "--blocks", "2",
                    "--calib", str(calib_file(tmp_path)), "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "factory.json").read_text())
    s = doc["prune"]
    assert doc["method"] == "prune" and doc["adapter"] is False and doc["base_model"] == str(six_block_dir)
    assert len(s["distances"]) == 5  # starts 0..4 for 2-block spans of 6 blocks
    assert s["removed"] == list(IDENTITY_SPAN)
    others = [d for i, d in enumerate(s["distances"]) if i != IDENTITY_SPAN[0]]
    assert s["distances"][IDENTITY_SPAN[0]] < 0.01 < min(others)
    assert s["after"]["blocks"] == 4 and s["after"]["parameters"] < s["before"]["parameters"]
    assert 0 < s["after"]["flops_per_token"] < s["before"]["flops_per_token"]
    report = (out / "prune-report.md").read_text()
    assert "Removed blocks 2-3" in report and report.count("| removed |") == 1
    assert (out / "prune-distances.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 4
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template  # the chat template travels with the checkpoint
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    original = AutoModelForCausalLM.from_pretrained(six_block_dir).eval()
    # the kept blocks are the original 0, 1, 4, 5
    for new, old in zip(range(4), (0, 1, 4, 5), strict=True):
        assert torch.equal(model.model.layers[new].mlp.up_proj.weight, original.model.layers[old].mlp.up_proj.weight)
    ids = tok("What is 2 plus 3?", return_tensors="pt")
    with torch.no_grad():
        cached = model.generate(**ids, max_new_tokens=8, do_sample=False)
        uncached = model.generate(**ids, max_new_tokens=8, do_sample=False, use_cache=False)
    assert cached.shape[1] > ids["input_ids"].shape[1]
    assert torch.equal(cached, uncached)


def test_remove_span_in_memory_renumbers_layers_for_the_kv_cache(six_block_dir):
    from transformers import AutoModelForCausalLM

    from factory.trainers.prune import remove_span

    model = AutoModelForCausalLM.from_pretrained(six_block_dir).eval()
    remove_span(model, 1, 3)
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1, 2]
    assert model.config.num_hidden_layers == 3
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    with torch.no_grad():
        cached = model.generate(ids, max_new_tokens=6, do_sample=False)
        uncached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("kind", ["qwen2", "mistral"])
def test_qwen2_and_mistral_stacks_prune_with_their_per_layer_lists(kind):
    from transformers import AutoConfig, AutoModelForCausalLM

    from factory.testing.tiny import build_tiny_tokenizer
    from factory.trainers.prune import angular_distances, best_start, remove_span

    tok = build_tiny_tokenizer()
    config = AutoConfig.for_model(kind, hidden_size=32, intermediate_size=64, num_hidden_layers=5,
                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tok),
                                  layer_types=["full_attention", "sliding_attention"] * 2 + ["full_attention"],
                                  sliding_window=16, use_sliding_window=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    types = list(model.config.layer_types)
    distances = angular_distances(model, tok, ["Some calibration text.", "More text, longer than the first."], 2)
    assert len(distances) == 4 and all(0 <= d <= 1 for d in distances)
    start = best_start(distances)
    remove_span(model, start, 2)
    expected = [t for i, t in enumerate(types) if not start <= i < start + 2]
    assert model.config.layer_types == expected and model.config.num_hidden_layers == 3
    with torch.no_grad():
        out = model.generate(torch.tensor([[1, 5, 9]]), max_new_tokens=4, do_sample=False)
    assert out.shape[1] == 7


@pytest.mark.parametrize("blocks", ["0", "-1", "6", "9"])
def test_bad_block_counts_exit_2_and_write_nothing(six_block_dir, tmp_path, blocks):
    out = tmp_path / "pruned"
    result = invoke(tmp_path / "home", "prune", "--model", str(six_block_dir), "--blocks", blocks,
                    "--calib", str(calib_file(tmp_path)), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "--blocks" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not out.with_name("pruned.partial").exists()


def test_calibration_without_text_exit_2_and_write_nothing(six_block_dir, tmp_path):
    calib = write_jsonl(tmp_path / "numbers.jsonl", [{"id": str(i), "score": i} for i in range(5)])
    out = tmp_path / "pruned"
    result = invoke(tmp_path / "home", "prune", "--model", str(six_block_dir), "--blocks", "2", "--calib",
                    str(calib), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "has no text" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not out.with_name("pruned.partial").exists()


def test_unknown_architecture_is_a_clear_error(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from factory.testing.tiny import build_tiny_tokenizer

    path = tmp_path / "gpt2"
    tok = build_tiny_tokenizer(path)
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=3, n_head=2, vocab_size=len(tok))).save_pretrained(path)
    result = invoke(tmp_path / "home", "prune", "--model", str(path), "--blocks", "1", "--calib",
                    str(calib_file(tmp_path)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "'gpt2' is not a supported decoder stack" in result.output
    assert not (tmp_path / "out").exists()
