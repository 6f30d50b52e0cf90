"""Rows that must not cost money: empty prompts are never sent, the same request twice is paid once.

Through the real CLI (click's CliRunner) against the stub server over HTTP with the real `openai` SDK; the stub
counts every request it receives and the tokens it charged, and the manifest's `cost` must agree with it.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import Store
from tests.helpers import write_jsonl

PRICE = 1000.0  # $ per million tokens, in and out


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


def graded(call: dict) -> str:
    """A judge's verdict for judge calls (a system prompt), a plain answer otherwise."""
    system = call["system"] or next((m["content"] for m in call["messages"] if m["role"] == "system"), "")
    if system and call["schema"] is not None:
        return json.dumps({"rationale": "fine", "score": 8})
    if system:
        return "Fine.\nRating: [[8]]"
    return f"An answer to: {call['prompt'][-40:]}"


@pytest.fixture
def stub(openai_stub):
    return openai_stub(responder=graded, key="sk-rows-test")


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "factory-store.json").write_text("{}")
    (home / "config.yaml").write_text(f"prices:\n  stub-model: {{input: {PRICE}, output: {PRICE}}}\n")
    return home


def imported(home, tmp_path, name: str, rows: list[dict]) -> None:
    result = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / f"{name}.jsonl", rows)), "--name", name)
    assert result.exit_code == 0, result.output


def charged(stub) -> float:
    s = stub.stats()
    return (s["prompt_tokens"] + s["completion_tokens"]) * PRICE / 1e6


BLANKS = [None, "", "   ", "\n\t"]


def test_generate_never_sends_empty_instructions(home, tmp_path, stub) -> None:
    rows = [{"id": f"r{i}", "instruction": f"Question {i}?"} for i in range(3)]
    rows += [{"id": f"b{i}", "instruction": blank} for i, blank in enumerate(BLANKS)]
    imported(home, tmp_path, "p", rows)
    result = invoke(home, "generate", "p", "--llm", "openai:stub-model")
    assert result.exit_code == 0, result.output
    assert stub.stats()["requests"] == 3
    m = Store(home).resolve("p-answers").manifest
    assert m.counters["skipped"] == len(BLANKS) and m.counters["kept"] == 3 and m.counters["failed"] == 0
    assert m.cost.requests == 3 and m.cost.usd == pytest.approx(charged(stub))
    assert f"{len(BLANKS)} skipped" in result.output
    assert sorted(Store(home).resolve("p-answers").read()["id"].to_list()) == ["r0", "r1", "r2"]


def test_generate_of_only_empty_instructions_sends_nothing_and_says_why(home, tmp_path, stub) -> None:
    imported(home, tmp_path, "p", [{"id": f"b{i}", "instruction": blank} for i, blank in enumerate(BLANKS)])
    result = invoke(home, "generate", "p", "--llm", "openai:stub-model")
    assert result.exit_code != 0 and "skipped" in result.output and "Traceback" not in result.output
    assert stub.stats()["requests"] == 0 and Store(home).versions("p-answers") == []


def test_build_skips_empty_seeds(home, tmp_path, stub) -> None:
    good = [{"id": f"r{i}", "instruction": f"Explain idea number {i} in detail."} for i in range(3)]
    imported(home, tmp_path, "good", good)
    imported(home, tmp_path, "mixed", good + [{"id": f"b{i}", "instruction": b} for i, b in enumerate(BLANKS)])
    args = ["--llm", "openai:stub-model", "--set", "rounds=1", "--allow-empty"]
    assert invoke(home, "build", "evol-instruct", "--from", "good", "--name", "a", *args).exit_code == 0
    alone = stub.stats()["requests"]
    stub.reset()
    other = tmp_path / "other"  # a fresh cache: every request of the good seeds is asked again
    other.mkdir()
    (other / "factory-store.json").write_text("{}")
    (other / "config.yaml").write_text((home / "config.yaml").read_text())
    imported(other, tmp_path, "mixed", good + [{"id": f"b{i}", "instruction": b} for i, b in enumerate(BLANKS)])
    result = invoke(other, "build", "evol-instruct", "--from", "mixed", "--name", "b", *args)
    assert result.exit_code == 0, result.output
    assert stub.stats()["requests"] == alone > 0  # the blank seeds cost nothing
    m = Store(other).resolve("b").manifest
    assert m.counters["skipped"] == len(BLANKS) and f"{len(BLANKS)} skipped" in result.output


@pytest.mark.parametrize("keep_all", [False, True], ids=["filter", "keep-all"])
def test_judge_skips_rows_with_nothing_to_judge(home, tmp_path, stub, keep_all: bool) -> None:
    rows = [{"id": f"r{i}", "instruction": f"Question {i}?", "response": f"Answer {i}."} for i in range(3)]
    rows += [{"id": "x1", "instruction": "Question?", "response": None},
             {"id": "x2", "instruction": "  ", "response": "An answer."},
             {"id": "x3", "instruction": None, "response": ""}]
    imported(home, tmp_path, "qa", rows)
    result = invoke(home, "judge", "qa", "--with", "openai:stub-model", *(["--keep-all"] if keep_all else []))
    assert result.exit_code == 0, result.output
    assert stub.stats()["requests"] == 3
    version = Store(home).resolve("qa-judged")
    m = version.manifest
    assert m.counters["skipped"] == 3 and m.counters["kept"] == 3 and m.counters["failed"] == 0
    assert "3 skipped" in result.output
    df = version.read()
    if keep_all:  # every row is there; the unsent ones say why, with no score
        blank = df.filter(df["id"].str.starts_with("x"))
        assert blank.height == 3 and blank["judge_score"].null_count() == 3
        assert all(e.startswith("nothing to judge") for e in blank["judge_error"].to_list())
    else:
        assert sorted(df["id"].to_list()) == ["r0", "r1", "r2"]


# -- the same request on several rows ------------------------------------------------------------------------
def test_duplicate_rows_are_one_call_paid_once(home, tmp_path, stub) -> None:
    stub.configure(latency_s=0.2)  # all in flight at once: the duplicates must wait for the first call
    rows = [{"id": f"r{i}", "instruction": f"Question {i % 2}?"} for i in range(6)]
    imported(home, tmp_path, "p", rows)
    result = invoke(home, "generate", "p", "--llm", "openai:stub-model", "--name", "a")
    assert result.exit_code == 0, result.output
    s = stub.stats()
    assert s["requests"] == 2 and s["repeated"] == 0
    version = Store(home).resolve("a")
    m = version.manifest
    assert m.cost.requests == 2 and m.cost.usd == pytest.approx(charged(stub)) and m.cost.usd > 0
    df = version.read()
    assert df.height == 6 and df["error"].null_count() == 6
    for row in df.iter_rows(named=True):
        assert re.search(rf"Question {int(row['id'][1:]) % 2}\?", row["response"])
    paid = m.cost.usd
    # the same recipe again under another name: every answer comes from the cache, and is counted once
    again = invoke(home, "generate", "p", "--llm", "openai:stub-model", "--name", "b")
    assert again.exit_code == 0, again.output
    assert stub.stats()["requests"] == 2
    cached = Store(home).resolve("b").manifest
    assert cached.cost.requests == 2 and cached.cost.usd == pytest.approx(paid)


@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_duplicates_across_batches_are_paid_once(home, tmp_path, stub, cache: bool) -> None:
    # 520 rows are two batches of the executor (512 a batch): the second batch repeats the first's requests
    imported(home, tmp_path, "p", [{"id": f"r{i}", "instruction": f"Question {i % 8}?"} for i in range(520)])
    flags = [] if cache else ["--no-cache"]
    result = invoke(home, "generate", "p", "--llm", "openai:stub-model", *flags)
    assert result.exit_code == 0, result.output
    assert stub.stats()["requests"] == 8
    m = Store(home).resolve("p-answers").manifest
    assert m.rows == 520 and m.counters["failed"] == 0
    assert m.cost.requests == 8 and m.cost.usd == pytest.approx(charged(stub))


def test_a_judge_pays_once_for_identical_rows(home, tmp_path, stub) -> None:
    rows = [{"id": f"r{i}", "instruction": "Same question?", "response": "Same answer."} for i in range(5)]
    imported(home, tmp_path, "qa", rows)
    result = invoke(home, "judge", "qa", "--with", "openai:stub-model", "--keep-all")
    assert result.exit_code == 0, result.output
    assert stub.stats()["requests"] == 1
    version = Store(home).resolve("qa-judged")
    assert version.manifest.cost.requests == 1 and version.manifest.cost.usd == pytest.approx(charged(stub))
    assert version.read()["judge_score"].to_list() == [8.0] * 5


def test_dry_run_counts_distinct_requests_and_no_blank_rows(home, tmp_path, stub) -> None:
    rows = [{"id": f"r{i}", "instruction": f"Question {i % 3}?"} for i in range(9)] + [{"id": "b", "instruction": ""}]
    imported(home, tmp_path, "p", rows)
    result = invoke(home, "generate", "p", "--llm", "openai:stub-model", "--dry-run")
    assert result.exit_code == 0 and "3 requests to send" in result.output, result.output
    assert stub.stats()["requests"] == 0
