"""SPIN's optional per-iteration evaluation on a tiny Llama (CPU): exact match on held-out rows, MT-Bench with a
stub judge, the LM Eval Harness on the shipped offline task; the SFT row of the table; early stop."""

from __future__ import annotations

import json
import re

import pytest

from factory.llm import ChatRequest, load_llm
from factory.recipes.spin import table
from factory.store import Store
from tests.helpers import run_factory
from tests.test_judge_cli import stub_env  # noqa: F401 (fixture)
from tests.test_spin import FAST
from tests.test_train_sft import import_rows, invoke, one_thread  # noqa: F401  (autouse fixture)

ROWS = [{"id": f"r{i}", "instruction": f"What is {i} plus {i}?", "response": f"{i} plus {i} is {2 * i}."}
        for i in range(16)]


def judge(seen: list):
    def reply(call):
        seen.append(call["prompt"])
        return "A short assessment.\nRating: [[5]]"
    return reply


def test_the_table_starts_with_the_sft_model_and_shows_what_was_evaluated():
    sft = {"iteration": -1, "model": "m", "eval": {"heldout": {"accuracy": 0.25}, "mt_bench": {"score": 3.5}}}
    its = [{"iteration": 0, "pairs": 8, "train_pairs": 8, "eval": {"heldout": {"accuracy": 0.5}},
            "metrics": {"train_loss": 0.6, "rewards/margins": 0.2, "rewards/chosen": 0.1, "rewards/rejected": -0.1,
                        "rewards/accuracies": 0.75}}]
    lines = table(its, sft).splitlines()
    assert lines[0].split()[-4:] == ["accuracy", "heldout", "EM", "MT-Bench"]
    assert lines[1].split() == ["SFT", "-", "-", "-", "-", "-", "-", "-", "0.2500", "3.5000"]
    assert lines[2].split() == ["0", "8", "8", "0.6000", "0.2000", "0.1000", "-0.1000", "0.7500", "0.5000", "-"]
    assert "EM" not in table([{**its[0], "eval": {}}])  # nothing evaluated: no evaluation column


def test_bad_evaluation_settings_are_one_line_errors_and_write_nothing(tmp_path, tiny_dir):
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS)
    import_rows(home, tmp_path, "notes", [{"id": "1", "text": "just text"}])
    out = tmp_path / "spin"
    before = sorted(p.name for p in (home / "datasets").iterdir())
    cases = [
        (["--eval", "notes", "--eval-fraction", "0.2"], "not both"),
        (["--eval", "notes"], "held-out set notes@"),
        (["--eval", "nowhere"], "nowhere"),
        (["--eval", "sft", "--set", "eval.checker=vibes"], "vibes"),
        (["--eval-fraction", "0.2", "--set", "eval.max_tokns=3"], "max_tokns"),
        (["--eval-fraction", "0.2", "--set", "iterations.1.eval.n=3"], "cannot change between iterations"),
        (["--lm-eval-tasks", "x", "--set", "eval.lm_eval_limit=0"], "lm_eval_limit"),
    ]
    for args, message in cases:
        r = invoke(home, "train", "spin", "--model", str(tiny_dir), "--data", "sft", "--iterations", "2", "--out",
                   str(out), *args)
        assert r.exit_code == 2, (args, r.output)
        line = r.stderr.strip()
        assert line.startswith("error: ") and message in line and "\n" not in line and "Traceback" not in r.output
        assert not out.exists()
    assert "`messages`, or `instruction` and `response`" in invoke(
        home, "train", "spin", "--model", str(tiny_dir), "--data", "sft", "--iterations", "1", "--out", str(out),
        "--eval", "notes").stderr
    assert sorted(p.name for p in (home / "datasets").iterdir()) == before


@pytest.mark.slow
def test_held_out_exact_match_and_mt_bench_per_iteration_then_early_stop(tmp_path, tiny_dir, stub_env):  # noqa: F811
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS)
    out = tmp_path / "spin"
    seen: list[str] = []
    stub = stub_env(judge(seen))
    # iteration 1 learns next to nothing (lr 1e-12: its policy stays its reference, margin ~0): its margin is not above
    # iteration 0's, so a 3-iteration run stops after it
    args = ("--eval-fraction", "0.25", "--set", "eval.max_tokens=8", "--mt-bench-judge", "openai:stub-model",
            "--mt-bench-n", "2", "--set", "eval.mt_bench_max_tokens=6", "--early-stop", "--set",
            "iterations.0.max_steps=4", "--set", "iterations.1.learning_rate=1e-12")
    r = invoke(home, "train", "spin", "--model", str(tiny_dir), "--data", "sft", "--iterations", "3", "--out",
               str(out), *FAST, *args)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == str(out / "iter_1") and not (out / "iter_2").exists()
    assert "stopped early: the reward margin did not improve" in r.stderr
    summary = json.loads((out / "spin.json").read_text())
    margins = [h["metrics"]["rewards/margins"] for h in summary["iterations"]]
    assert len(margins) == 2 and margins[0] > 0 and margins[1] <= margins[0]

    # the held-out rows were neither self-played nor trained on, and every checkpoint was scored on all of them
    store = Store(home)
    heldout = store.resolve("sft-heldout").read().to_dicts()
    train_ids = {row["id"] for row in store.resolve("sft-train").read().to_dicts()}
    assert heldout and {row["id"] for row in heldout}.isdisjoint(train_ids)
    assert train_ids | {row["id"] for row in heldout} == {row["id"] for row in ROWS}
    for h in summary["iterations"]:
        assert set(store.resolve(h["generated"]).read()["seed_id"]) <= train_ids
    rows = [summary["sft"], *summary["iterations"]]
    assert [row["iteration"] for row in rows] == [-1, 0, 1] and summary["sft"]["model"] == str(tiny_dir)
    for label, row in zip(["sft", "iter_0", "iter_1"], rows, strict=True):
        scored = json.loads((out / "eval" / f"{label}.json").read_text())["heldout"]
        assert row["eval"]["heldout"] == scored and scored["total"] == len(heldout)
        assert scored["accuracy"] == sum(o["correct"] for o in scored["rows"]) / len(heldout)
        assert row["eval"]["mt_bench"]["score"] == 5.0 and row["eval"]["mt_bench"]["graded"] == 4
    # the answers scored are the checkpoint's own greedy answers
    first = heldout[0]
    again = load_llm(f"hf:{out / 'iter_0'}", cache=False, progress=False).generate_sync([ChatRequest(
        messages=[{"role": "user", "content": first["instruction"]}], temperature=0, max_tokens=8)])[0]
    scored0 = json.loads((out / "eval" / "iter_0.json").read_text())["heldout"]["rows"]
    assert next(o for o in scored0 if o["id"] == first["id"])["answer"] == again.text
    # the iterates' cards carry their scores; the SFT model's directory is left as it was
    record = json.loads((out / "iter_1" / "factory.json").read_text())
    assert record["eval"]["heldout-exact-match"] == {"accuracy": rows[2]["eval"]["heldout"]["accuracy"]}
    assert record["eval"]["mt-bench"]["score"] == 5.0 and not (tiny_dir / "factory.json").exists()
    # the table: SFT first, then one row per iteration, with the evaluation columns
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    head = next(i for i, line in enumerate(lines) if re.match(r"\s*iter\s+pairs", line))
    assert "heldout EM" in lines[head] and "MT-Bench" in lines[head]
    assert [lines[head + k].split()[0] for k in (1, 2, 3)] == ["SFT", "0", "1"]
    assert summary["table"] == "\n".join(lines[head:head + 4])
    # a rerun evaluates nothing again and stops at the same place
    calls = stub.stats()["requests"]  # 3 checkpoints x 4 turns, each distinct grading asked once (the LLM cache)
    assert calls == len(seen) == len(set(seen)) and 4 <= calls <= 12
    kept = {p.name: p.read_bytes() for p in (out / "eval").iterdir()}
    again = invoke(home, "train", "spin", "--model", str(tiny_dir), "--data", "sft", "--iterations", "3", "--out",
                   str(out), *FAST, *args)
    assert again.exit_code == 0, again.output
    assert stub.stats()["requests"] == calls and not (out / "iter_2").exists()
    assert {p.name: p.read_bytes() for p in (out / "eval").iterdir()} == kept


@pytest.mark.slow
def test_lm_eval_tasks_per_iteration(tmp_path, tiny_dir):
    # A subprocess, as a user runs it: HF_*_OFFLINE must not leak into the test session (see test_eval_lm_eval).
    home = tmp_path / "home"
    import_rows(home, tmp_path, "sft", ROWS[:6])
    out = tmp_path / "spin"
    r = run_factory("-q", "train", "spin", "--model", str(tiny_dir), "--data", "sft", "--iterations", "1", "--out",
                    str(out), *FAST, "--lm-eval-tasks", "factory_smoke", "--set", "eval.lm_eval_limit=4", home=home,
                    env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "spin.json").read_text())
    scores = [h["eval"]["lm_eval"]["tasks"]["factory_smoke"]["acc"] for h in (summary["sft"], *summary["iterations"])]
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
    assert "factory_smoke acc" in summary["table"].splitlines()[0]
    record = json.loads((out / "iter_0" / "factory.json").read_text())
    assert record["eval"]["factory_smoke"] == {"acc": scores[1]}
