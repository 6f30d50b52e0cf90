"""`factory eval lm-eval`: the LM Eval Harness on the shipped offline task, scores into factory.json and the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from tests.helpers import run_factory
from tests.test_publish_checkpoint import build_lora_checkpoint


@pytest.mark.slow
def test_lm_eval_on_a_lora_checkpoint_lands_in_its_card(tmp_path: Path, tiny_dir: Path) -> None:
    # In a subprocess, as a user runs it: HF_*_OFFLINE are read when `datasets` is first imported, and must not
    # leak into the rest of the test session.
    ckpt = build_lora_checkpoint(tiny_dir, tmp_path / "ckpt", [{"name": "seed", "version": "0123456789ab"}],
                                 {"mt-bench": {"score": 3.0}})
    home = tmp_path / "home"
    offline = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = run_factory("eval", "lm-eval", "--model", str(ckpt), "--tasks", "factory_smoke", "--limit", "6",
                         home=home, env=offline, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path == ckpt / "eval" / "lm-eval.json"
    saved = json.loads(path.read_text())
    acc = saved["tasks"]["factory_smoke"]["acc"]
    assert 0.0 <= acc <= 1.0 and set(saved["tasks"]["factory_smoke"]) == {"acc"}
    assert saved["model_args"]["peft"] == str(ckpt.resolve())  # the adapter was loaded on its base
    record = json.loads((ckpt / "factory.json").read_text())
    assert record["eval"] == {"mt-bench": {"score": 3.0}, "factory_smoke": {"acc": acc}}  # merged, not replaced

    card = run_factory("publish", str(ckpt), "--repo", "testorg/eval-model", "--dry-run", home=home, env=offline)
    assert card.returncode == 0, card.stderr[-2000:]
    assert "factory_smoke" in card.stdout and f"{acc:g}"[:4] in card.stdout


def test_unknown_task_and_missing_model_are_one_line_errors(tmp_path: Path, tiny_dir: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    r = runner.invoke(cli, ["--home", home, "eval", "lm-eval", "--model", str(tiny_dir), "--tasks", "no_such_task"])
    assert r.exit_code == 2 and "unknown lm-eval task 'no_such_task'" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(cli, ["--home", home, "eval", "lm-eval", "--model", "./nowhere/ckpt",
                            "--tasks", "factory_smoke"])
    assert r.exit_code == 2 and "no such checkpoint directory" in r.output
    r = runner.invoke(cli, ["--home", home, "eval", "lm-eval", "--model", str(tiny_dir), "--tasks", "factory_smoke",
                            "--include-path", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not a directory" in r.output
