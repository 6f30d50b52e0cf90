"""SPIN on a tiny Llama (CPU): the self-play scheme's rows, two iterations of `factory train spin`, its config,
bad input, publishing an iterate, and a SIGKILL during iteration 1 followed by a rerun that resumes there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from factory.llm import ChatRequest, load_llm
from factory.recipes.spin_config import load_spin_config
from factory.schemes.self_play import split_row
from factory.store import Store
from tests.helpers import REPO
from tests.test_judge_cli import stub_env  # noqa: F401 (fixture)
from tests.test_train_sft import import_rows, invoke, one_thread  # noqa: F401  (autouse fixture)

ROWS = [{"id": f"r{i}", "instruction": f"What is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."}
        for i in range(6)]
FAST = ["--set", "max_tokens=8", "--set", "max_steps=2", "--set", "per_device_train_batch_size=4",
        "--set", "learning_rate=5e-3", "--set", "lora.r=4", "--set", "max_length=64"]


def spin(home, model, out, *extra: str, iterations: int = 2):
    return invoke(home, "-q", "train", "spin", "--model", str(model), "--data", "sft", "--iterations",
                  str(iterations), "--out", str(out), *FAST, *extra)


# -- the self-play scheme -------------------------------------------------------------------------------------
def test_self_play_rows_pair_the_ground_truth_with_the_models_answer(tmp_path, tiny_dir):
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS)
    r = invoke(home, "build", "self-play", "--from", "sft", "--llm", f"hf:{tiny_dir}", "--set", "max_tokens=8")
    assert r.exit_code == 0, r.output
    version = Store(home).resolve(r.stdout.strip().splitlines()[-1])
    rows = version.read().to_dicts()
    assert len(rows) == 6 and version.manifest.counters["kept"] == 6
    fresh = load_llm(f"hf:{tiny_dir}", cache=False, progress=False)  # the model answers again, uncached
    for row, seed in zip(rows, ROWS, strict=True):
        assert row["prompt"] == [{"role": "user", "content": seed["instruction"]}]
        assert row["chosen"] == [{"role": "assistant", "content": seed["response"]}]
        again = fresh.generate_sync([ChatRequest(messages=row["prompt"], temperature=0.8, top_p=0.95, max_tokens=8,
                                                 seed=0)])[0]
        assert row["rejected"] == [{"role": "assistant", "content": again.text}] and row["rejected_text"] == again.text
        assert row["model"] == f"hf:{tiny_dir}" and row["iteration"] == 0 and row["seed_id"] == seed["id"]


def test_answers_equal_to_the_ground_truth_are_counted_and_left_out(tmp_path, tiny_dir):
    home = tmp_path / "home"
    greedy = load_llm(f"hf:{tiny_dir}", cache=False, progress=False)
    rows = [dict(r) for r in ROWS[:4]]
    for row in rows[:2]:  # the ground truth of two rows is exactly what the model says
        row["response"] = greedy.generate_sync([ChatRequest(messages=[{"role": "user", "content": row["instruction"]}],
                                                            temperature=0, max_tokens=8)])[0].text
    import_rows(home, tmp_path, "sft", rows)
    r = invoke(home, "build", "self-play", "--from", "sft", "--llm", f"hf:{tiny_dir}", "--set", "temperature=0",
               "--set", "max_tokens=8")
    assert r.exit_code == 0, r.output
    version = Store(home).resolve("self-play")
    assert version.manifest.counters["identical"] == 2 and version.manifest.counters["kept"] == 2
    assert version.read()["seed_id"].to_list() == ["r2", "r3"]


def test_an_openai_compatible_server_serves_self_play_and_failed_calls_are_counted_left_out_and_retried(
        tmp_path, stub_env):  # noqa: F811
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS[:4])
    # the request for row r2 fails once, not retryably (400): that row is left out, then retried by a rerun
    stub = stub_env(lambda call: f"My answer to: {call['prompt']}", script=["400"], fault_match="What is 2 plus 2")
    args = ("build", "self-play", "--from", "sft", "--llm", "openai:stub-model", "--set", "max_tokens=8")
    r = invoke(home, *args)
    assert r.exit_code == 0, r.output
    version = Store(home).resolve(r.stdout.strip().splitlines()[-1])
    counters = version.manifest.counters
    assert counters["kept"] == 3 and counters["failed"] == 1 and stub.stats()["by_status"] == {"200": 3, "400": 1}
    rows = version.read().to_dicts()
    assert [row["seed_id"] for row in rows] == ["r0", "r1", "r3"]
    for row in rows:
        seed = next(s for s in ROWS if s["id"] == row["seed_id"])
        assert row["chosen_text"] == seed["response"]
        assert row["rejected_text"] == f"My answer to: {seed['instruction']}"
        assert row["model"] == "stub-model"  # the model the server says answered
    again = invoke(home, *args)
    assert again.exit_code == 0, again.output
    retried = Store(home).resolve(again.stdout.strip().splitlines()[-1])
    assert retried.manifest.counters["kept"] == 4 and sorted(retried.read()["seed_id"]) == ["r0", "r1", "r2", "r3"]


def test_mix_none_previous_all_pick_the_iterations_pairs(tmp_path):
    from factory.recipes.spin import _mix

    home = tmp_path / "home"
    refs = [import_rows(home, tmp_path, f"pairs{t}", ROWS[t:t + 1]) for t in range(3)]
    store = Store(home)
    history = [{"generated": refs[0]}, {"generated": refs[1]}]
    now = store.resolve(refs[2])

    def mixed(mix, earlier):
        return [v.ref for v in _mix(store, mix, earlier, now)]
    assert mixed("none", history) == [refs[2]]
    assert mixed("previous", history) == [refs[1], refs[2]]
    assert mixed("all", history) == refs
    for mix in ("none", "previous", "all"):  # iteration 0: nothing earlier to mix in, not an error
        assert mixed(mix, []) == [refs[2]]


def test_split_row_takes_the_first_or_the_last_answer():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "A"}, {"role": "user", "content": "b"},
                {"role": "assistant", "content": "B"}]
    assert split_row({"messages": messages}, "first") == (messages[:2], "A")
    assert split_row({"messages": messages}, "last") == (messages[:4], "B")
    assert split_row({"instruction": "Do it.", "input": "now", "response": "Done."}, "first") == (
        [{"role": "user", "content": "Do it.\n\nnow"}], "Done.")
    assert split_row({"messages": messages[:2]}, "first") is None  # no answer to learn from


# -- the config -----------------------------------------------------------------------------------------------
def test_flat_and_per_iteration_settings_resolve_to_their_sections(tmp_path):
    cfg = load_spin_config(None, ["max_tokens=64", "max_steps=10", "iterations.2.learning_rate=1e-7",
                                  "iterations.3.beta=5.0", "iterations.3.temperature=0.5"], iterations=4)
    assert cfg.generation.max_tokens == 64 and cfg.training == {"max_steps": 10} and cfg.iterations == 4
    assert cfg.at(0).train_settings()["learning_rate"] == 5e-7
    assert float(cfg.at(2).train_settings()["learning_rate"]) == 1e-7
    assert cfg.at(3).train_settings()["beta"] == 5.0 and cfg.at(3).generation.temperature == 0.5
    assert cfg.at(3).generation.max_tokens == 64 and cfg.at(1).train_settings()["beta"] == 0.1
    assert cfg.identity(0) == cfg.identity(0) and cfg.identity(2) != cfg.identity(1)
    yaml = tmp_path / "spin.yaml"
    yaml.write_text("iterations:\n  - {learning_rate: 5.0e-7}\n  - {learning_rate: 1.0e-7, beta: 5.0}\n")
    listed = load_spin_config(str(yaml), [])
    assert listed.iterations == 2 and listed.at(1).train_settings()["beta"] == 5.0
    from factory.errors import BadInput

    with pytest.raises(BadInput, match="temprature"):
        load_spin_config(None, ["generation.temprature=1"], iterations=1)
    with pytest.raises(BadInput, match="cannot change between iterations"):
        load_spin_config(None, ["iterations.1.model=other"], iterations=2)


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, tiny_dir):
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS)
    import_rows(home, tmp_path, "notes", [{"id": "1", "text": "just text"}])
    out = tmp_path / "spin"
    bare = tmp_path / "bare"  # the tiny model without a chat template
    import shutil

    from transformers import AutoTokenizer

    shutil.copytree(tiny_dir, bare)
    tok = AutoTokenizer.from_pretrained(bare)
    tok.chat_template = None
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tok.save_pretrained(bare)
    assert not AutoTokenizer.from_pretrained(bare).chat_template
    before = sorted(p.name for p in (home / "datasets").iterdir())
    cases = [
        (["--model", str(tiny_dir), "--data", "sft", "--iterations", "0"], "--iterations must be at least 1"),
        (["--model", str(tiny_dir), "--data", "sft", "--iterations", "-2"], "--iterations must be at least 1"),
        (["--model", str(tiny_dir), "--data", "notes", "--iterations", "1"], "--map instruction=COLUMN"),
        (["--model", str(bare), "--data", "sft", "--iterations", "1"], "has no chat template"),
        (["--model", str(tiny_dir), "--data", "sft", "--iterations", "1", "--set", "max_stpes=3"], "max_stpes"),
    ]
    for args, message in cases:
        r = invoke(home, "train", "spin", *args, "--out", str(out))
        assert r.exit_code == 2, (args, r.output)
        line = r.stderr.strip()
        assert line.startswith("error: ") and message in line and "\n" not in line and "Traceback" not in r.output
        assert not out.exists()
    r = invoke(home, "train", "spin", "--model", str(tiny_dir), "--data", "notes", "--iterations", "1", "--out",
               str(out))
    assert "`messages`, or `instruction` and `response`" in r.stderr and "factory datasets convert sft" in r.stderr
    assert sorted(p.name for p in (home / "datasets").iterdir()) == before


# -- the loop -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_iterations_train_against_the_previous_iterate(tmp_path, tiny_dir):
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS)
    out = tmp_path / "spin"
    r = spin(home, tiny_dir, out, "--set", "iterations.1.learning_rate=1e-2")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(out / "iter_1")
    store = Store(home)
    docs = [json.loads((out / f"iter_{t}" / "factory.json").read_text()) for t in range(2)]
    for t, doc in enumerate(docs):
        assert doc["method"] == "spin" and doc["adapter"] is False and doc["spin"]["iteration"] == t
        pairs = store.resolve(doc["spin"]["generated"])
        assert pairs.manifest.stage.name == "self-play" and set(pairs.read()["iteration"]) == {t}
    # iteration 1 starts from, and is referenced against, iteration 0's model
    assert docs[0]["base_model"] == docs[0]["spin"]["reference"] == str(tiny_dir)
    assert docs[1]["base_model"] == docs[1]["spin"]["reference"] == str(out / "iter_0")
    # iteration 0 has nothing earlier to mix in; iteration 1 trains on its own pairs and iteration 0's (mix: previous)
    assert docs[0]["spin"]["mix"] == "previous" and docs[0]["spin"]["trained_on"] == [docs[0]["spin"]["generated"]]
    assert docs[1]["spin"]["trained_on"] == [docs[0]["spin"]["generated"], docs[1]["spin"]["generated"]]
    assert [f"{d['name']}@{d['version']}" for d in docs[1]["datasets"]] == docs[1]["spin"]["trained_on"]
    assert docs[1]["spin"]["train_pairs"] == 2 * docs[1]["spin"]["pairs"] > 0
    # the generating model of iteration 1's pairs is iteration 0's checkpoint
    assert set(store.resolve(docs[1]["spin"]["generated"]).read()["model"]) == {f"hf:{out / 'iter_0'}"}
    # each iterate's weights differ from the one before; iteration 1 = iteration 0 + a merged rank-4 LoRA
    w = [load_file(str(p / "model.safetensors")) for p in (tiny_dir, out / "iter_0", out / "iter_1")]
    for before, after in zip(w, w[1:], strict=False):
        assert any(not torch.equal(before[k], after[k]) for k in before)
    key = "model.layers.0.self_attn.q_proj.weight"
    delta = w[2][key] - w[1][key]
    assert delta.abs().sum() > 0 and torch.linalg.matrix_rank(delta, atol=1e-6) <= 4
    # per-iteration settings and flat keys reach TRL
    args = [json.loads((out / f"iter_{t}" / "training_args.json").read_text()) for t in range(2)]
    assert args[0]["learning_rate"] == 5e-3 and args[1]["learning_rate"] == 1e-2 and args[0]["max_steps"] == 2
    assert args[0]["optim"] == "rmsprop" and args[0]["beta"] == 0.1
    summary = json.loads((out / "spin.json").read_text())
    assert [h["iteration"] for h in summary["iterations"]] == [0, 1]
    assert all(isinstance(h["metrics"]["rewards/margins"], float) for h in summary["iterations"])
    assert "margin" in summary["table"] and "accuracy" in summary["table"]
    # a finished run is a no-op when rerun
    finished = (out / "iter_1" / "factory.json").read_bytes()
    again = spin(home, tiny_dir, out, "--set", "iterations.1.learning_rate=1e-2")
    assert again.exit_code == 0 and (out / "iter_1" / "factory.json").read_bytes() == finished
    changed = spin(home, tiny_dir, out)
    assert changed.exit_code == 2 and "trained with other SPIN settings" in changed.stderr
    # any iterate publishes with a card that names SPIN, the iteration and the data chain
    card = invoke(home, "publish", str(out / "iter_1"), "--repo", "me/spin-tiny", "--dry-run")
    assert card.exit_code == 0, card.output
    assert "SPIN iteration | 1" in card.output and "Self-Play Fine-Tuning" in card.output
    assert f"iter 0: `{docs[0]['spin']['generated']}`" in card.output
    assert f"iter 1: `{docs[1]['spin']['generated']}`" in card.output


@pytest.mark.slow
def test_full_fine_tuning_and_mix_all_on_the_cli(tmp_path, tiny_dir):
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS[:4])
    out = tmp_path / "spin"
    r = spin(home, tiny_dir, out, "--set", "tuning=full", "--mix", "all", "--set", "learning_rate=1e-3",
             iterations=1)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "iter_0" / "factory.json").read_text())
    assert doc["tuning"] == "full" and doc["adapter"] is False and doc["spin"]["mix"] == "all"
    assert not (out / "iter_0" / "adapter_config.json").exists()
    before = load_file(str(tiny_dir / "model.safetensors"))
    after = load_file(str(out / "iter_0" / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    delta = after[key] - before[key]  # every weight trains: the change is not a low-rank LoRA product
    assert torch.linalg.matrix_rank(delta, atol=1e-7) > 16
    assert not torch.equal(before["model.layers.0.mlp.down_proj.weight"], after["model.layers.0.mlp.down_proj.weight"])


@pytest.mark.slow
def test_sigkill_in_iteration_1_resumes_there(tmp_path, tiny_dir):
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS)
    out = tmp_path / "spin"
    args = [sys.executable, "-m", "factory", "--home", str(home), "-q", "train", "spin", "--model", str(tiny_dir),
            "--data", "sft", "--iterations", "2", "--out", str(out), *FAST, "--set", "max_steps=8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 1200  # a loaded shared CI machine is slow; the kill only waits for iteration 1
    while not (out / "iter_1.partial").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if proc.poll() is not None or not (out / "iter_1.partial").is_dir():
        proc.kill()
        pytest.fail(f"iteration 1 never started training: {proc.communicate()[1].decode()[-2000:]}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "iter_1").exists() and (out / "iter_0" / "factory.json").is_file()
    store = Store(home)
    kept = (out / "iter_0" / "factory.json").read_bytes()
    generated = {n: [(v.ref, (v.path / "manifest.json").stat().st_mtime_ns) for v in store.versions(n)]
                 for n in ("spin-sft-iter0", "spin-sft-iter1")}
    assert all(len(v) == 1 for v in generated.values())  # iteration 1's pairs were stored before training began
    rerun = subprocess.run(args[:5] + ["-v"] + args[6:], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "SPIN iteration 0 finished in an earlier run; kept" in rerun.stderr
    assert "SPIN iteration 0: generating" not in rerun.stderr
    assert (out / "iter_0" / "factory.json").read_bytes() == kept  # iteration 0 was not retrained
    after = {n: [(v.ref, (v.path / "manifest.json").stat().st_mtime_ns) for v in store.versions(n)]
             for n in ("spin-sft-iter0", "spin-sft-iter1")}
    assert after == generated  # no pairs regenerated
    doc = json.loads((out / "iter_1" / "factory.json").read_text())
    assert doc["spin"]["iteration"] == 1 and doc["metrics"]["steps"] == 8 and not (out / "iter_1.partial").exists()
