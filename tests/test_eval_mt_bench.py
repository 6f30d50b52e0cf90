"""`factory eval mt-bench`: a model answers MT-Bench questions, a stub judge grades them, a table and JSON come out."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from statistics import fmean

import pytest

from factory.eval.questions import load_questions, select
from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import run_factory, write_jsonl
from tests.test_judge_cli import invoke, stub_env, system_of  # noqa: F401 (fixture)

CATEGORIES = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]


def question_of(prompt: str) -> str:
    return re.search(r"### Question\n(.*?)\n\n### ", prompt, re.S).group(1)


def score_of(question: str) -> int:
    """The stub judge's grade: a function of the question, so the test can predict every number."""
    return len(question) % 10 + 1


def grader(seen: list):
    def reply(call):
        seen.append(call["prompt"])
        return f"A short assessment.\nRating: [[{score_of(question_of(call['prompt']))}]]"
    return reply


def test_bundled_questions_and_an_even_spread_over_categories():
    df, fingerprint, location = load_questions(None)
    assert df.height == 80 and location.endswith("mt_bench/question.jsonl") and len(fingerprint) == 64
    assert df["turns"].list.len().to_list() == [2] * 80 and df["reference"].is_not_null().sum() == 39
    assert list(dict.fromkeys(df["category"])) == CATEGORIES
    eight = select(df, 8)
    assert eight["category"].to_list() == CATEGORIES
    ten = select(df, 10)["category"].value_counts()
    assert dict(zip(ten["category"], ten["count"], strict=True)) == {**dict.fromkeys(CATEGORIES, 1), "writing": 2,
                                                                     "roleplay": 2}


@pytest.mark.slow
def test_mt_bench_end_to_end_on_the_tiny_model(tmp_path, tiny_dir, stub_env):  # noqa: F811
    home = tmp_path / "home"
    out = tmp_path / "results.json"
    ckpt = shutil.copytree(tiny_dir, tmp_path / "ckpt")  # a checkpoint as `factory train` leaves it
    (ckpt / "factory.json").write_text(json.dumps({"kind": "checkpoint", "eval": {"arc_easy": {"acc": 0.25}}}))
    seen: list[str] = []
    args = ["eval", "mt-bench", "--model", str(ckpt), "--judge", "openai:stub-model", "--n", "8",
            "--max-tokens", "8", "--temperature", "0", "--out", str(out)]
    with StubLLMServer(responder=grader(seen)) as stub:
        env = {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "sk-eval-test"}
        r = run_factory(*args, home=home, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        sent = stub.stats()["requests"]
    fresh = stub_env(grader([]))  # a rerun (in-process, to save a second start-up) is served from the cache
    again = invoke(home, *args)
    assert again.exit_code == 0, again.output
    assert fresh.stats()["requests"] == 0
    results = json.loads(out.read_text())
    store = Store(home)
    judgments = store.resolve(results["datasets"]["judgments"]).read()
    turns = store.resolve(results["datasets"]["answers"]).read()
    assert judgments.height == 16 and turns.height == 8
    graded = judgments.filter(judgments["judge_score"].is_not_null())
    assert graded.height == sent == results["graded"] > 8  # the tiny model answered most turns
    by_category = defaultdict(list)
    for row in graded.iter_rows(named=True):
        assert row["judge_score"] == score_of(row["instruction"])
        by_category[row["category"]].append(row["judge_score"])
    assert list(results["categories"]) == CATEGORIES
    for category, scores in by_category.items():
        assert results["categories"][category]["score"] == pytest.approx(fmean(scores), abs=1e-4)
    assert results["score"] == pytest.approx(fmean(graded["judge_score"]), abs=1e-4)
    assert results["model"] == f"hf:{ckpt.resolve()}" and results["judge"] == "openai:stub-model"
    card = {"score": results["score"], "turn_1": results["turns"]["1"], "turn_2": results["turns"]["2"]}
    assert json.loads((ckpt / "factory.json").read_text())["eval"] == {"arc_easy": {"acc": 0.25}, "mt-bench": card}
    assert results["rubric"] == {"name": "mt-bench-single", "version": "1"}
    # the judge saw reference answers exactly for math, reasoning and coding
    with_reference = {question_of(p) for p in seen if "### Reference answer" in p}
    assert with_reference == set(graded.filter(graded["category"].is_in(["math", "reasoning", "coding"]))
                                 ["instruction"])
    assert any("### Earlier turns" in p for p in seen)  # turn 2 is graded in the context of turn 1
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["category", "questions", "turn", "1", "turn", "2", "score", "failed"]
    assert [line.split()[0] for line in lines[2:-1]] == [*CATEGORIES, "overall"]
    assert f"{results['score']:.2f}" in lines[-2] and again.stdout == r.stdout
    assert lines[-1] == str(out)  # the last line names the results file, so a recipe stage can chain it


def test_user_questions_with_an_api_model(tmp_path, stub_env):  # noqa: F811
    home = tmp_path / "home"
    questions = [
        {"category": "math", "turns": ["What is 2 + 2?", "And times 3?"], "reference": ["4", "12"]},
        {"category": "math", "turns": ["What is 10 / 4?"], "reference": ["2.5"]},
        {"category": "chat", "turns": "Say hello."},  # a single turn may be a plain string
    ]
    seen: list[str] = []
    judge = grader(seen)

    def model_or_judge(call):
        return judge(call) if system_of(call) else f"My answer to: {call['prompt']}"

    stub = stub_env(model_or_judge)
    path = write_jsonl(tmp_path / "q.jsonl", questions)
    out = tmp_path / "r.json"
    r = invoke(home, "eval", "mt-bench", "--model", "openai:stub-model", "--judge", "openai:stub-model",
               "--questions", str(path), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert stub.stats()["requests"] == 4 + 4  # 4 turns answered, 4 graded
    results = json.loads(out.read_text())
    assert results["questions"] == 3 and results["graded"] == 4 and results["failed"] == 0
    math = [score_of(q) for q in ("What is 2 + 2?", "And times 3?", "What is 10 / 4?")]
    assert results["categories"]["math"]["score"] == pytest.approx(fmean(math), abs=1e-4)
    assert results["categories"]["math"]["turns"] == {"1": pytest.approx(fmean(math[::2]), abs=1e-4),
                                                     "2": float(math[1])}
    assert results["categories"]["chat"]["turns"] == {"1": float(score_of("Say hello."))}
    assert sum("### Reference answer\n12" in p for p in seen) == 1
    assert "overall" in r.stdout and "chat" in r.stdout

    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "x"}])
    r = invoke(home, "eval", "mt-bench", "--model", "openai:stub-model", "--judge", "openai:stub-model",
               "--questions", str(bad))
    assert r.exit_code == 2 and "lacks columns category, turns" in r.output
    r = invoke(home, "eval", "mt-bench", "--model", "openai:stub-model", "--judge", "gpt5-please")
    assert r.exit_code == 2 and "unknown LLM 'gpt5-please'" in r.output
