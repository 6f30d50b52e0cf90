"""`factory eval speculative` on tiny Llamas: a draft equal to the target accepts everything, greedy outputs agree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from tests.helpers import write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def prompts_file(tmp_path: Path) -> Path:
    rows = [{"instruction": "What is 2 plus 3?"}, {"instruction": "Write a haiku about rain."},
            {"messages": [{"role": "user", "content": "Explain how a list works."},
                          {"role": "assistant", "content": "It holds items."}]}]
    return write_jsonl(tmp_path / "prompts.jsonl", rows)


def invoke(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_draft_equal_to_target_accepts_every_token_and_outputs_agree(tiny_dir, tmp_path):
    out = tmp_path / "spec.json"
    result = invoke(tmp_path / "home", "eval", "speculative", "--target", str(tiny_dir), "--draft", str(tiny_dir),
                    "--prompts", str(prompts_file(tmp_path)), "--max-new-tokens", "12", "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["prompts"] == 3 and doc["identical"] == 3
    assert doc["proposed"] > 0 and doc["acceptance_rate"] == 1.0
    assert doc["mean_accepted_per_step"] == doc["proposed"] / doc["steps"] >= 1
    assert doc["tokens_per_s_target"] > 0 and doc["tokens_per_s_assisted"] > 0
    assert all(r["tokens"] > 0 for r in doc["rows"])
    assert "1.000" in result.output and "3/3" in result.output


def test_a_different_draft_is_rejected_often_but_the_output_is_the_targets(tiny_dir, tmp_path):
    from factory.testing.tiny import build_tiny_llama

    draft = build_tiny_llama(tmp_path / "draft", seed=7)
    out = tmp_path / "spec.json"
    result = invoke(tmp_path / "home", "eval", "speculative", "--target", str(tiny_dir), "--draft", str(draft),
                    "--prompts", str(prompts_file(tmp_path)), "--max-new-tokens", "12", "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["identical"] == 3  # greedy assisted decoding never changes the target's answer
    assert 0 <= doc["acceptance_rate"] < 1.0
    assert doc["accepted"] <= doc["proposed"]


def test_draft_with_another_vocabulary_exit_2_and_write_nothing(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    draft = tmp_path / "other-vocab"
    shutil.copytree(tiny_dir, draft)
    tok = AutoTokenizer.from_pretrained(draft)
    tok.add_tokens(["<|extra|>"])
    tok.save_pretrained(draft)
    out = tmp_path / "spec.json"
    result = invoke(tmp_path / "home", "eval", "speculative", "--target", str(tiny_dir), "--draft", str(draft),
                    "--prompts", str(prompts_file(tmp_path)), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "different vocabulary" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()
