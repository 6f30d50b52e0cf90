"""`factory train distill` end to end on a tiny Llama (CPU): prune, self-distill, SFT (+ baseline), the table.

The tiny model's text is gibberish, so its accuracy is ~0 everywhere; what is checked is the recipe: every stage
ran and wrote what it should, the SFT runs changed the pruned weights, the table has its four rows with
retention, a rerun does no work again, and bad input writes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from factory.cli.main import cli
from factory.store import Store
from tests.helpers import write_jsonl

FAST = ["--set", "training.max_steps=2", "--set", "training.per_device_train_batch_size=4",
        "--set", "training.save_strategy=no", "--set", "training.max_length=64", "--set", "lora.r=4"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def math_rows(n: int, start: int = 0) -> list[dict]:
    return [{"id": str(i), "instruction": f"What is {i} plus {i + 1}?",
             "response": f"{i} plus {i + 1} is {2 * i + 1}. The answer is {2 * i + 1}.", "answer": str(2 * i + 1)}
            for i in range(start, start + n)]


def invoke(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


@pytest.mark.slow
def test_distill_runs_every_stage_and_a_rerun_does_nothing_again(tmp_path):
    from factory.testing.tiny import build_tiny_llama

    model = build_tiny_llama(tmp_path / "tiny4", num_layers=4)
    data = write_jsonl(tmp_path / "train.jsonl", math_rows(8))
    heldout = write_jsonl(tmp_path / "heldout.jsonl", math_rows(3, start=50))
    home, out = tmp_path / "home", tmp_path / "run"
    args = ["train", "distill", "--model", str(model), "--blocks", "1", "--data", str(data), "--eval", str(heldout),
            "--n-calib", "8", "--max-tokens", "12", "--eval-max-tokens", "8", "--out", str(out), *FAST]
    result = invoke(home, *args)
    assert result.exit_code == 0, result.output
    state = json.loads((out / "distill.json").read_text())
    assert [r["label"] for r in state["results"]] == ["original", "pruned", "pruned + SFT",
                                                      "pruned + self-distilled SFT"]
    assert [r["blocks"] for r in state["results"]] == [4, 3, 3, 3]
    assert all(r["total"] == 3 and r["failed"] == 0 for r in state["results"])
    assert state["results"][1]["parameters"] < state["results"][0]["parameters"]
    assert set(state["seconds"]) >= {"prune", "self-distill", "train-sft", "train-self-distill", "eval-original"}
    table = (out / "results.md").read_text()
    assert "pruned + self-distilled SFT" in table and "retention" in table

    pruned = load_file(str(out / "pruned" / "model.safetensors"))
    for stage in ("sft-merged", "sft-self-distill-merged"):
        doc = json.loads((out / stage / "factory.json").read_text())
        assert doc["method"] == "sft" and doc["base_model"] == str(out / "pruned")
        trained = load_file(str(out / stage / "model.safetensors"))
        q = "model.layers.0.self_attn.q_proj.weight"
        assert not torch.equal(trained[q], pruned[q])  # the LoRA on q/k/v/o was trained and merged
        assert torch.equal(trained["model.layers.0.mlp.up_proj.weight"], pruned["model.layers.0.mlp.up_proj.weight"])
    store = Store(home)
    distilled = store.resolve(state["datasets"]["self-distill"])
    assert distilled.manifest.stage.name == "self-distill" and distilled.manifest.rows == 8
    assert set(distilled.read()["distill_kept"].to_list()) <= {"rewrite", "original"}
    sft_data = json.loads((out / "sft-self-distill" / "factory.json").read_text())["datasets"]
    assert sft_data == [{"name": distilled.name, "version": distilled.version}]

    marks = {p: os.stat(p).st_mtime_ns for p in (out / "pruned" / "model.safetensors",
                                                  out / "sft-merged" / "model.safetensors",
                                                  out / "eval" / "self-distill.json")}
    again = invoke(home, *args)
    assert again.exit_code == 0, again.output
    assert {p: os.stat(p).st_mtime_ns for p in marks} == marks  # nothing pruned, trained or evaluated again
    assert json.loads((out / "distill.json").read_text())["results"] == state["results"]

    other = invoke(home, *[a if a != "1" else "2" for a in args])  # --blocks 2 into the same --out
    assert other.exit_code == 2 and "another recipe" in other.output


@pytest.mark.slow
def test_full_fine_tuning_without_baseline_and_lm_eval_scores_with_retention(tmp_path):
    # A subprocess, as a user runs it: HF_*_OFFLINE must not leak into the test session (see test_eval_lm_eval).
    from factory.testing.tiny import build_tiny_llama
    from tests.helpers import run_factory

    model = build_tiny_llama(tmp_path / "tiny3", num_layers=3)
    data = write_jsonl(tmp_path / "train.jsonl", math_rows(6))
    heldout = write_jsonl(tmp_path / "heldout.jsonl", math_rows(2, start=50))
    out = tmp_path / "run"
    r = run_factory("-q", "train", "distill", "--model", str(model), "--blocks", "1", "--data", str(data), "--eval",
                    str(heldout), "--n-calib", "4", "--max-tokens", "8", "--eval-max-tokens", "4", "--no-baseline",
                    "--lm-eval-tasks", "factory_smoke", "--lm-eval-limit", "4", "--out", str(out), *FAST,
                    "--set", "tuning=full", home=tmp_path / "home",
                    env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    state = json.loads((out / "distill.json").read_text())
    assert [x["stage"] for x in state["results"]] == ["original", "pruned", "self-distill"]  # no baseline
    assert not (out / "sft").exists() and not (out / "sft-merged").exists()
    doc = json.loads((out / "sft-self-distill-merged" / "factory.json").read_text())
    assert doc["tuning"] == "full" and not (out / "sft-self-distill" / "adapter_config.json").exists()
    pruned = load_file(str(out / "pruned" / "model.safetensors"))
    trained = load_file(str(out / "sft-self-distill-merged" / "model.safetensors"))
    key = "model.layers.0.mlp.up_proj.weight"  # full fine-tuning: beyond LoRA's q/k/v/o
    assert not torch.equal(trained[key], pruned[key])
    scores = [x["lm_eval"]["factory_smoke"]["acc"] for x in state["results"]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    for x in state["results"]:
        kept = x["lm_eval_retention"]["factory_smoke"]["acc"]
        assert kept == (x["lm_eval"]["factory_smoke"]["acc"] / scores[0] if scores[0] else None)
        assert json.loads((out / "eval" / f"{x['stage']}-lm-eval.json").read_text())["tasks"] == x["lm_eval"]
    assert "factory_smoke acc" in (out / "results.md").read_text()


@pytest.mark.parametrize("blocks", ["0", "4", "7"])
def test_bad_block_counts_exit_2_and_write_nothing(tiny_dir, tmp_path, blocks):
    data = write_jsonl(tmp_path / "train.jsonl", math_rows(4))
    out = tmp_path / "run"
    result = invoke(tmp_path / "home", "train", "distill", "--model", str(tiny_dir), "--blocks", blocks,
                    "--data", str(data), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "--blocks" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "home" / "datasets").exists()


def test_held_out_split_is_disjoint_seeded_and_reused(tmp_path):
    from factory.recipes.distill import DistillConfig, _head, _split
    from factory.store.importer import import_dataset

    store = Store(tmp_path / "home")
    data, _ = import_dataset(store, str(write_jsonl(tmp_path / "d.jsonl", math_rows(200))), "math")
    cfg = DistillConfig(model="m", blocks=1, data="math", out=str(tmp_path / "run"), eval_fraction=0.2)
    train, heldout = _split(store, data, cfg)
    a, b = set(train.read()["id"]), set(heldout.read()["id"])
    assert not a & b and a | b == {str(i) for i in range(200)}
    assert 20 <= len(b) <= 60  # about a fifth
    again = _split(store, data, cfg)
    assert (again[0].version, again[1].version) == (train.version, heldout.version)
    other = _split(store, data, cfg.model_copy(update={"seed": 1}))
    assert set(other[1].read()["id"]) != b
    assert heldout.manifest.inputs[0].name == "math"
    first = _head(store, train, 5)
    assert first.read()["id"].to_list() == train.read()["id"].to_list()[:5]
    assert first.manifest.counters["dropped"] == train.manifest.rows - 5
