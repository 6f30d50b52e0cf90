"""`factory generate`: a model answers a dataset's instructions, through the CLI."""

from __future__ import annotations

import json

import pytest

from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import run_factory, write_jsonl

ROWS = [{"id": f"r{i}", "instruction": f"Say something about topic {i}.", "context": "" if i % 2 else "Some context."}
        for i in range(6)]


def test_generate_with_a_local_model_is_batched_and_reproducible(tmp_path, tiny_dir):
    home = tmp_path / "home"
    assert run_factory("datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", ROWS)), "--name", "p",
                       home=home).returncode == 0
    args = ["generate", "p", "--llm", f"hf:{tiny_dir}", "--temperature", "0", "--max-tokens", "8", "--name", "a"]
    first = run_factory(*args, home=home)
    assert first.returncode == 0, first.stderr
    version = Store(home).resolve("a")
    df = version.read()
    assert df.height == 6 and df["error"].null_count() == 6 and all(df["response"].str.len_chars() > 0)
    msgs = df["messages"].to_list()[0]
    assert [m["role"] for m in msgs] == ["user", "assistant"] and msgs[0]["content"].endswith("Some context.")
    assert version.manifest.stage.name == "respond" and version.manifest.inputs[0].name == "p"
    assert version.manifest.cost.usd == 0 and version.manifest.cost.completion_tokens > 0
    again = run_factory(*args, home=home)
    assert again.returncode == 0 and "unchanged" in again.stderr and again.stdout.strip() == version.ref


@pytest.mark.slow
def test_a_lora_checkpoint_generates_as_its_merged_model(tmp_path, tiny_dir):
    """`--llm hf:DIR` on an adapter folder (what `train sft` leaves with LoRA): the adapter on its base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():  # a trained adapter, not LoRA's zero init
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    adapter, merged = tmp_path / "adapter", tmp_path / "merged"
    model.save_pretrained(adapter)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.save_pretrained(adapter)
    model.merge_and_unload().save_pretrained(merged)
    tok.save_pretrained(merged)
    home = tmp_path / "home"
    assert run_factory("datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", ROWS)), "--name", "p",
                       home=home).returncode == 0
    answers = {}
    for label, path in (("adapter", adapter), ("merged", merged), ("base", tiny_dir)):
        r = run_factory("generate", "p", "--llm", f"hf:{path}", "--temperature", "0", "--max-tokens", "8",
                        "--name", label, home=home)
        assert r.returncode == 0, r.stderr
        answers[label] = Store(home).resolve(label).read()["response"].to_list()
    assert answers["adapter"] == answers["merged"] != answers["base"]

def test_generate_dry_run_and_budget_through_the_cli(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "factory-store.json").write_text("{}")
    (home / "config.yaml").write_text("prices:\n  stub-model: {input: 5000, output: 5000}\n")
    many = [{"id": f"m{i}", "instruction": f"Question {i}?"} for i in range(60)]
    run_factory("datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", many)), "--name", "p", home=home)
    with StubLLMServer() as stub:
        env = {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "sk-secret-test-key"}
        dry = run_factory("generate", "p", "--llm", "openai:stub-model", "--dry-run", home=home, env=env)
        assert dry.returncode == 0 and "60 requests to send" in dry.stdout and "at most $" in dry.stdout
        assert stub.stats()["requests"] == 0
        capped = run_factory("generate", "p", "--llm", "openai:stub-model", "--budget", "1", "--max-tokens", "20",
                             "--concurrency", "2", home=home, env=env)
        assert capped.returncode == 1 and "budget of $1 reached" in capped.stderr
        assert "rerun with a higher --budget" in capped.stderr
        sent = stub.stats()["requests"]
        assert 0 < sent < 60 and Store(home).versions("p-answers") == []
        done = run_factory("generate", "p", "--llm", "openai:stub-model", "--budget", "100", "--max-tokens", "20",
                           home=home, env=env)
        assert done.returncode == 0, done.stderr
        assert stub.stats()["requests"] == 60
    manifest = (Store(home).resolve("p-answers").path / "manifest.json").read_text()
    assert "sk-secret-test-key" not in manifest
    assert json.loads(manifest)["cost"]["requests"] == 60


def test_generate_bad_input(tmp_path):
    home = tmp_path / "home"
    run_factory("datasets", "import", str(write_jsonl(tmp_path / "q.jsonl", [{"question": "x"}])), "--name", "q",
                home=home)
    r = run_factory("generate", "q", "--llm", "local", home=home)
    assert r.returncode == 2 and "needs an `instruction` or `messages` column" in r.stderr
    run_factory("datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", ROWS)), "--name", "p", home=home)
    r = run_factory("generate", "p", "--llm", "gpt5-please", home=home)
    assert r.returncode == 2 and "unknown LLM 'gpt5-please'" in r.stderr
    r = run_factory("generate", "p", "--llm", "gpt4", home=home, env={"OPENAI_API_KEY": ""})
    assert r.returncode == 1 and "set OPENAI_API_KEY" in r.stderr
