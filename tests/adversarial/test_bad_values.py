"""Out-of-range values are one-line errors naming the key, through the real CLI, before anything runs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from tests.helpers import write_jsonl


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": f"q{i}", "response": f"a{i}"} for i in range(3)])
    assert invoke(home, "datasets", "import", str(tmp_path / "a.jsonl"), "--name", "alpha").exit_code == 0
    chats = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
             for i in range(3)]
    write_jsonl(tmp_path / "chat.jsonl", chats)
    assert invoke(home, "datasets", "import", str(tmp_path / "chat.jsonl"), "--name", "chat").exit_code == 0
    return home


@pytest.mark.parametrize(
    "setting,key",
    [("lora.r=0", "lora.r"), ("lora.lora_dropout=1.5", "lora.lora_dropout"),
     ("training.learning_rate=nan", "training.learning_rate"), ("training.learning_rate=-1", "training.learning_rate"),
     ("training.max_steps=-5", "training.max_steps"), ("training.num_train_epochs=0", "training.num_train_epochs")],
)
def test_training_values_out_of_range(home, tmp_path, tiny_dir, setting: str, key: str) -> None:
    out = tmp_path / "ckpt"
    result = invoke(home, "train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(out),
                    "--set", setting)
    assert result.exit_code == 2, result.output
    assert key in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_filter_word_range_that_nothing_can_pass(home) -> None:
    result = invoke(home, "filter", "alpha", "--min-words", "10", "--max-words", "2")
    assert result.exit_code == 2 and "min_words" in result.output and "max_words" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("price", ["{input: -1, output: 2}", "{input: .nan, output: 1}", "{input: cheap}", "3"])
def test_bad_prices_name_the_key(home, price: str) -> None:
    (home / "config.yaml").write_text(f"prices:\n  stub-model: {price}\n")
    result = invoke(home, "build", "evol-instruct", "--from", "alpha", "--llm", "openai:stub-model", "--dry-run")
    assert result.exit_code == 2, result.output
    assert "prices.stub-model" in result.output and "Traceback" not in result.output
