"""The shipped SPIN and self-distillation recipes run end to end with `factory run`, as a user would, on tiny
local models: the YAML's stages chain (a stage's output is the next one's input), every stage's output exists,
and a rerun does nothing again. The papers' own scale is for a GPU; here only the shape and the chain are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.helpers import run_factory, write_jsonl


def math_rows(n: int, start: int = 0) -> list[dict]:
    return [{"instruction": f"What is {i} plus {i + 1}?", "response": f"{i} plus {i + 1} is {2 * i + 1}.",
             "answer": str(2 * i + 1)} for i in range(start, start + n)]


def stage_statuses(stdout: str, names: list[str]) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0] in names:
            found[parts[0]] = parts[2]
    return found


ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_spin_recipe_trains_and_evaluates_every_iterate(tmp_path, tiny_dir):
    home = tmp_path / "home"
    data = write_jsonl(tmp_path / "sft.jsonl", math_rows(16))  # no id column, like real SFT sets
    args = ["run", "spin", "--set", f"model={tiny_dir}", "--set", f"ultrachat={data}", "--set", "split=null",
            "--set", "n=16", "--set", "iterations=2", "--set", "judge=null", "--set", "tasks=null",
            "--set", "spin.eval_fraction=0.25",
            # fast, and a learning rate that moves a tiny model (the recipe's schedule stays, these join it)
            "--set", "spin.set.max_tokens=8", "--set", "spin.set.max_steps=2", "--set", "spin.set.lora.r=4",
            "--set", "spin.set.per_device_train_batch_size=4", "--set", "spin.set.max_length=64",
            "--set", "spin.set.iterations.0.learning_rate=5e-3", "--set", "spin.set.iterations.1.learning_rate=5e-3"]
    r = run_factory(*args, home=home, env=ONE_THREAD, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert stage_statuses(r.stdout, ["sft-data", "spin"]) == {"sft-data": "done", "spin": "done"}
    # the paper's 4-iteration schedule run for 2: said, not silently dropped
    assert "settings for iteration 2, 3 are not used" in r.stderr
    out = home / "runs" / "spin" / "spin"
    state = json.loads((out / "spin.json").read_text())
    assert [it["iteration"] for it in state["iterations"]] == [0, 1]
    assert state["sft"]["eval"]["heldout"]["total"] > 0  # the SFT model is the table's first row
    assert all(it["eval"]["heldout"]["total"] == state["sft"]["eval"]["heldout"]["total"]
               for it in state["iterations"])
    assert (out / "spin.png").read_bytes().startswith(b"\x89PNG")  # the table, plotted
    # each iterate's (merged) weights differ from the model before it
    w = [load_file(p / "model.safetensors") for p in (tiny_dir, out / "iter_0", out / "iter_1")]
    assert all(any(not (a[k] == b[k]).all() for k in a) for a, b in zip(w, w[1:], strict=False))

    again = run_factory(*args, home=home, env=ONE_THREAD, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(stage_statuses(again.stdout, ["sft-data", "spin"]).values()) == {"skipped"}


@pytest.mark.slow
def test_self_distill_recipe_prunes_trains_merges_and_checks_the_draft(tmp_path):
    from factory.testing.tiny import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny4", num_layers=4)
    home = tmp_path / "home"
    sft = write_jsonl(tmp_path / "sft.jsonl", math_rows(8))
    heldout = write_jsonl(tmp_path / "heldout.jsonl", math_rows(3, start=50))
    fast = [f"distill.set.{k}" for k in ("training.max_steps=2", "training.per_device_train_batch_size=4",
                                         "training.save_strategy=no", "training.max_length=64", "lora.r=4")]
    sets = [f"model={model}", "blocks=1", "n=8", f"sft_set={sft}", f"heldout_set={heldout}", "distill.n_calib=8",
            "distill.max_tokens=12", "distill.eval_max_tokens=8", *fast]
    args = ["run", "self-distill", *[x for s in sets for x in ("--set", s)]]
    names = ["sft-data", "heldout", "distill", "merged", "speculative"]
    r = run_factory(*args, home=home, env=ONE_THREAD, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert stage_statuses(r.stdout, names) == dict.fromkeys(names, "done")
    run = home / "runs" / "self-distill"
    results = json.loads((run / "distill" / "distill.json").read_text())["results"]
    assert [x["blocks"] for x in results] == [4, 3, 3, 3]
    assert (run / "distill" / "results.png").read_bytes().startswith(b"\x89PNG")
    merged = json.loads((run / "merged" / "config.json").read_text())
    assert merged["num_hidden_layers"] == 3  # the merge of two pruned models is pruned too
    spec = json.loads((home / "evals" / "speculative-merged.json").read_text())
    assert spec["prompts"] == 3 and spec["proposed"] > 0 and 0 <= spec["acceptance_rate"] <= 1

    again = run_factory(*args, home=home, env=ONE_THREAD, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert set(stage_statuses(again.stdout, names).values()) == {"skipped"}


def openbezoar_teacher(call: dict) -> str:
    """The teacher for the schemes, and a judge that rates every reply 8 (JSON when a schema is asked for)."""
    from tests.test_schemes import teacher

    system = call.get("system") or next((m["content"] for m in call["messages"] if m["role"] == "system"), "")
    if "rate the response" in system or "grading one answer" in system:
        structured = call["schema"] is not None
        return json.dumps({"rationale": "Clear.", "score": 8}) if structured else "Fine.\nRating: [[8]]"
    return teacher(call)


HH = [{"chosen": f"\n\nHuman: How do I boil water number {i}?\n\nAssistant: Heat it in a kettle until it bubbles.",
       "rejected": f"\n\nHuman: How do I boil water number {i}?\n\nAssistant: No idea."} for i in range(8)]


@pytest.mark.slow
def test_openbezoar_recipe_runs_every_stage_and_publishes(tmp_path, tiny_dir, hub_server, openai_stub):
    from huggingface_hub import HfApi

    TOKEN = "hf_test_token"  # testuser on the loopback Hub (factory.testing.hub_fixture)
    stub = openai_stub(responder=openbezoar_teacher)
    home = tmp_path / "home"
    hh = write_jsonl(tmp_path / "hh.jsonl", HH)
    train = ["set.tuning=lora", "set.training.max_steps=2", "set.training.per_device_train_batch_size=4",
             "set.training.max_length=512", "set.lora.r=4"]  # QLoRA needs CUDA; LoRA runs the same chain here
    sets = ["teacher=openai:stub-model", "judge=openai:stub-model", "mt_bench_judge=openai:stub-model",
            f"base={tiny_dir}", "dolly_15k=seeds:dolly", f"hh_rlhf={hh}", "hh.split=null", "repo=testuser/ob-tiny",
            "lamini_n=4", "orca_n=4", "evol_n=4",
            *[f"{stage}.{s}" for stage in ("sft-lamini-orca-evol", "hh-sft", "dpo") for s in train],
            "lm-eval.tasks=factory_smoke", "lm-eval.limit=4", "mt-bench.n=2", "mt-bench.max_tokens=8"]
    args = ["run", "openbezoar", *[x for s in sets for x in ("--set", s)]]
    env = {**ONE_THREAD, "OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "sk-ob-test", "HF_TOKEN": TOKEN}
    r = run_factory(*args, home=home, env=env, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    stages = {s["name"]: s for s in json.loads((home / "runs" / "openbezoar" / "run.json").read_text())["stages"]}
    assert [s["status"] for s in stages.values()] == ["done"] * 19
    for name in ("lamini-judged", "orca-judged", "evol-instruct-judged"):
        assert stages[name]["rows_out"] > 0 and stages[name]["counters"]["failed"] == 0
    # sequential SFT: one checkpoint trained on the three judged sets in the paper's order
    sft = json.loads((Path(stages["sft-lamini-orca-evol"]["artefact"]) / "factory.json").read_text())
    assert [d["name"] for d in sft["datasets"]] == ["lamini-judged", "orca-judged", "evol-instruct-judged"]
    dpo = json.loads((Path(stages["dpo"]["artefact"]) / "factory.json").read_text())
    assert dpo["base_model"] == stages["hh-sft-merged"]["artefact"]  # DPO starts from the merged SFT model
    released = json.loads((Path(stages["dpo-merged"]["artefact"]) / "factory.json").read_text())
    assert released["adapter"] is False and [d["name"] for d in released["datasets"]] == ["hh-pairs"]
    assert {"factory_smoke", "mt-bench"} <= set(released["eval"])  # both evaluations reached its record
    files = HfApi(token=TOKEN).list_repo_files("testuser/ob-tiny")
    assert {"README.md", "factory.json", "model.safetensors"} <= set(files)
    card = HfApi(token=TOKEN).hf_hub_download("testuser/ob-tiny", "README.md")
    assert "factory_smoke" in Path(card).read_text() and "mt-bench" in Path(card).read_text().lower()
    assert "sk-ob-test" not in (home / "runs" / "openbezoar" / "run.json").read_text()
