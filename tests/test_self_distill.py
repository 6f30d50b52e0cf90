"""The `self-distill` scheme through `factory build`, against the stub teacher over real HTTP, and its checkers."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.schemes.self_distill import auto_checker
from factory.schemes.self_distill.checkers import final_choice, final_number, verdict
from factory.store import Store
from tests.helpers import write_jsonl

CODE = "```python\ndef inc(x):\n    return x + 1\n```"
ROWS = [  # (instruction, reference answer, what the stub teacher writes back)
    ("Tom has 3 apples and buys 4 more. How many apples?", "3 + 4 = 7. The answer is 7.",
     "He ends up with 3 + 4 = 7 apples. The answer is 7."),
    ("What is 6 times 7?", "6 times 7 is 42.\n#### 42", "Six sevens make 40. The answer is 40."),
    ("What is 10 minus 4?", "10 - 4 = 6. The answer is 6.", "As the reference answer says, the answer is 6."),
    ("Which is a fruit? (A) car (B) apple", "Answer: B", "Answer: A"),
    ("Write a Python function that adds one.", CODE, "```python\ndef inc(x) return x + 1\n```"),
    ("Why is the sky blue?", "Air scatters blue light the most.", "Because the air scatters short blue waves."),
]


def teacher(req: dict) -> str:
    for instruction, _, rewrite in ROWS:
        if instruction in req["prompt"]:
            assert "### Reference answer" in req["prompt"]
            return rewrite
    return "unexpected prompt"


@pytest.fixture
def stub(openai_stub):
    return openai_stub(responder=teacher, key="test-key")


def invoke(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


def test_rewrites_are_kept_unless_a_checker_finds_a_changed_answer(stub, tmp_path):
    home = tmp_path / "home"
    data = write_jsonl(tmp_path / "sft.jsonl", [{"id": str(i), "instruction": q, "response": a}
                                                for i, (q, a, _) in enumerate(ROWS)])
    assert invoke(home, "datasets", "import", str(data), "--name", "sft").exit_code == 0
    result = invoke(home, "build", "self-distill", "--from", "sft", "--llm", "openai:stub-model")
    assert result.exit_code == 0, result.output
    version = Store(home).resolve(result.stdout.strip().splitlines()[-1])
    rows = {r["instruction"]: r for r in version.read().to_dicts()}
    expect = [("rewrite", "same_answer", "numbers"), ("original", "answer_changed", "numbers"),
              ("original", "mentions_reference", "numbers"), ("original", "answer_changed", "choices"),
              ("original", "answer_changed", "code"), ("rewrite", "unchecked", "none")]
    for (instruction, reference, rewrite), (kept, reason, checker) in zip(ROWS, expect, strict=True):
        row = rows[instruction]
        assert (row["distill_kept"], row["distill_reason"], row["distill_checker"]) == (kept, reason, checker)
        assert row["original_response"] == reference
        assert row["response"] == (rewrite if kept == "rewrite" else reference)
        assert row["messages"][-1] == {"role": "assistant", "content": row["response"]}
        assert row["messages"][0] == {"role": "user", "content": instruction}
    c = version.manifest.counters
    assert c["kept"] == 6 and c["failed"] == 0
    assert c["kept_rewrite"] == 2 and c["kept_original"] == 4
    assert c["reason_answer_changed"] == 3 and c["reason_mentions_reference"] == 1
    sent = stub.stats()["requests"]
    assert sent == 6
    again = invoke(home, "build", "self-distill", "--from", "sft", "--llm", "openai:stub-model")
    assert again.exit_code == 0 and stub.stats()["requests"] == sent  # a rerun is free


def test_checker_none_keeps_every_rewrite_and_task_checkers_pick_per_row(stub, tmp_path):
    home = tmp_path / "home"
    rows = [{"id": "0", "instruction": ROWS[1][0], "response": ROWS[1][1], "task": "chat"},
            {"id": "1", "instruction": ROWS[3][0], "response": ROWS[3][1], "task": "mc"}]
    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    assert invoke(home, "datasets", "import", str(data), "--name", "sft").exit_code == 0
    result = invoke(home, "build", "self-distill", "--from", "sft", "--llm", "openai:stub-model",
                    "--set", "checker=none", "--set", "task_column=task", "--set", "task_checkers.mc=choices")
    assert result.exit_code == 0, result.output
    by_instruction = {r["instruction"]: r for r in Store(home).resolve("self-distill").read().to_dicts()}
    out = {"chat": by_instruction[ROWS[1][0]], "mc": by_instruction[ROWS[3][0]]}
    assert out["chat"]["distill_kept"] == "rewrite" and out["chat"]["distill_checker"] == "none"
    assert out["mc"]["distill_kept"] == "original" and out["mc"]["distill_checker"] == "choices"


def test_messages_rows_and_an_unknown_checker(stub, tmp_path):
    home = tmp_path / "home"
    rows = [{"id": "0", "messages": [{"role": "user", "content": ROWS[0][0]},
                                     {"role": "assistant", "content": ROWS[0][1]}]}]
    assert invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "m.jsonl", rows)), "--name",
                  "chat").exit_code == 0
    result = invoke(home, "build", "self-distill", "--from", "chat", "--llm", "openai:stub-model")
    assert result.exit_code == 0, result.output
    row = Store(home).resolve("self-distill").read().to_dicts()[0]
    assert row["instruction"] == ROWS[0][0] and row["distill_kept"] == "rewrite"
    bad = CliRunner().invoke(cli, ["--home", str(home), "build", "self-distill", "--from", "chat", "--llm",
                                   "openai:stub-model", "--set", "checker=regex"])
    assert bad.exit_code == 2 and "unknown checker 'regex'" in bad.output


@pytest.mark.parametrize("text,number", [("so #### 1,234", "1234"), ("The answer is: 3.5 cups", "3.5"),
                                         ("first 2 then 9", "9"), ("no digits here", None)])
def test_final_number(text, number):
    assert final_number(text) == number


@pytest.mark.parametrize("text,choice", [("The answer is (C).", "C"), ("Answer: b", None), ("I pick\nD", "D"),
                                         ("the answer is a dog", None)])
def test_final_choice(text, choice):
    assert final_choice(text) == choice


def test_code_verdicts():
    assert verdict("code", CODE, "Here:\n" + CODE) == "same"
    assert verdict("code", CODE, "no code at all") == "changed"
    assert verdict("code", "no code", "anything") == "unchecked"


@pytest.mark.parametrize("reference,checker", [("9", "numbers"), (" -3.5 ", "numbers"), ("$1,200", "numbers"),
                                               ("So #### 12", "numbers"), ("The answer is (B).", "choices"),
                                               ("Paris", "none"), ("9 cats", "none")])
def test_auto_checker_reads_a_bare_answer_column_as_a_number(reference, checker):
    # a held-out set's `answer` column holds just "9": scored by the final number, not by exact match of the text
    assert auto_checker(reference) == checker


def test_held_out_scoring_of_a_bare_number_answer():
    from factory.recipes.distill_eval import correct, reference

    row = {"instruction": "Sam shares 27 books among 3 friends. How many each?", "answer": "9",
           "response": "27 / 3 = 9. The answer is 9."}
    assert correct(auto_checker(reference(row)), reference(row), "Each friend gets 27 / 3 = 9 books.")
    assert not correct(auto_checker(reference(row)), reference(row), "27 / 3 = 9, so 3 * 7 = 21 books")
