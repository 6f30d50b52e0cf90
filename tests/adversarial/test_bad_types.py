"""A column of the wrong type, or a file that is not text, is a one-line error naming it (exit 2), before any
request is sent or anything is written; through the real CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import Store
from tests.helpers import write_jsonl


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


@pytest.fixture
def stub(openai_stub):
    return openai_stub(key="sk-types-test")


def one_line_error(result, column: str) -> None:
    assert result.exit_code == 2, result.output
    assert f"column {column!r}" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


CHAT = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
CASES = {  # dataset -> (rows, the column named in the error)
    "int-instruction": ([{"instruction": i, "response": "r", "inputs": "q", "targets": "t"} for i in range(3)],
                        "instruction"),
    "list-instruction": ([{"instruction": ["a", "b"], "response": "r", "inputs": "q", "targets": "t"}] * 3,
                         "instruction"),
    "int-response": ([{"instruction": "q", "response": i} for i in range(3)], "response"),
    "text-messages": ([{"instruction": "q", "response": "r", "messages": "hello"}] * 3, "messages"),
}


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    for name, (rows, _) in CASES.items():
        r = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / f"{name}.jsonl", rows)), "--name", name)
        assert r.exit_code == 0, r.output
    return home


COMMANDS = {
    "generate": (["generate", "{ref}", "--llm", "openai:stub-model"], ("int-instruction", "list-instruction",
                                                                       "text-messages")),
    "judge": (["judge", "{ref}", "--with", "openai:stub-model"], ("int-instruction", "list-instruction",
                                                                  "int-response")),
    "build evol-instruct": (["build", "evol-instruct", "--from", "{ref}", "--llm", "openai:stub-model"],
                            ("int-instruction", "list-instruction", "int-response")),
    "build self-distill": (["build", "self-distill", "--from", "{ref}", "--llm", "openai:stub-model"],
                           ("int-instruction", "int-response", "text-messages")),
    "build lamini": (["build", "lamini", "--from", "{ref}", "--llm", "openai:stub-model"],
                     ("int-instruction", "list-instruction")),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_wrong_column_types_are_one_line_errors(home, stub, command: str) -> None:
    args, datasets = COMMANDS[command]
    for ref in datasets:
        for dry in ((), ("--dry-run",)):
            result = invoke(home, *[a.format(ref=ref) for a in args], *dry)
            one_line_error(result, CASES[ref][1])
    assert stub.stats()["requests"] == 0
    assert sorted(Store(home).names()) == sorted(CASES)


@pytest.mark.parametrize("messages,holds", [(5, "Int64"), (["a", "b"], "List(String)"),
                                            ([{"role": "user", "content": 5}], "Int64")])
def test_train_sft_refuses_messages_of_the_wrong_type(tmp_path, tiny_dir, messages, holds: str) -> None:
    home = tmp_path / "home"
    write_jsonl(tmp_path / "m.jsonl", [{"messages": messages}] * 3)
    assert invoke(home, "datasets", "import", str(tmp_path / "m.jsonl"), "--name", "m").exit_code == 0
    out = tmp_path / "out"
    result = invoke(home, "train", "sft", "--model", str(tiny_dir), "--data", "m", "--out", str(out))
    one_line_error(result, "messages")
    assert holds in result.output and not out.exists() and not out.with_name("out.partial").exists()


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\xff", "caf\xe9 topic\n".encode("latin-1")],
                         ids=["binary", "latin-1"])
def test_topics_files_that_are_not_utf8_text(home, tmp_path, stub, content: bytes) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_bytes(content)
    ok = write_jsonl(tmp_path / "ok.jsonl", [{"instruction": "Write a poem about the sea."}])
    assert invoke(home, "datasets", "import", str(ok), "--name", "ok").exit_code == 0
    result = invoke(home, "build", "lamini", "--from", "ok", "--llm", "openai:stub-model", "--set", f"topics={topics}")
    assert result.exit_code == 2 and "not UTF-8" in result.output and "topics" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and stub.stats()["requests"] == 0


def test_a_nan_budget_names_the_key(home, stub) -> None:
    result = invoke(home, "generate", "int-response", "--llm", "openai:stub-model", "--budget", "nan")
    assert result.exit_code == 2 and "budget_usd" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and stub.stats()["requests"] == 0
