"""Flags generated from pydantic configs (factory/cli/_flags.py) and the `--set` that helps (factory/config.py)."""

from __future__ import annotations

from typing import Literal

import click
import pytest
from click.testing import CliRunner
from pydantic import Field

from factory.cli._flags import given, model_options, take
from factory.config import StrictModel, build_config, parse_sets
from factory.errors import BadInput


class Opts(StrictModel):
    count: int = Field(3, ge=1, le=9, description="How many.")
    ratio: float | None = Field(None, gt=0, description="A share.")
    mode: Literal["fast", "slow"] = Field("fast", description="Which way.")
    loud: bool = Field(False, description="Shout.")
    cache: bool = Field(True, description="Use the cache.", json_schema_extra={"flag_help": "Skip the cache."})
    strict: bool | None = Field(None, description="Strict or lax (default: decide).")
    tags: list[str] = Field(default_factory=list, description="Tags (repeatable).")
    label: str = Field("x", description="A label.")


def _command(**kwargs):
    seen = {}

    @click.command()
    @model_options(Opts, **kwargs)
    def cmd(**kw):
        seen["all"] = take(Opts, dict(kw))
        seen["given"] = given(take(Opts, kw))
        seen["config"] = build_config(Opts, overrides=seen["given"])

    return cmd, seen


def test_options_take_type_default_range_and_help_from_the_fields():
    cmd, _ = _command(flags={"label": "--name"}, metavars={"tags": "TAG"})
    text = CliRunner().invoke(cmd, ["--help"], terminal_width=200).output
    line = next(ln for ln in text.splitlines() if "--count" in ln)
    assert "INTEGER RANGE" in line and "How many." in line and "[default: 3; 1<=x<=9]" in line
    assert "--ratio FLOAT RANGE" in text and "[x>0]" in text
    assert "--mode [fast|slow]" in text and "[default: fast]" in text
    assert "--loud" in text and "--no-cache" in text and "Skip the cache." in text and "Use the cache" not in text
    assert "--strict / --no-strict" in text
    assert "--tags TAG" in text and "--name TEXT" in text and "--label" not in text


def test_values_defaults_and_what_was_typed():
    cmd, seen = _command()
    r = CliRunner().invoke(cmd, [])
    assert r.exit_code == 0, r.output
    assert seen["all"] == {"count": 3, "ratio": None, "mode": "fast", "loud": False, "cache": True, "strict": None,
                           "tags": [], "label": "x"}
    assert seen["given"] == {} and seen["config"] == Opts()
    r = CliRunner().invoke(cmd, ["--count", "5", "--no-cache", "--loud", "--no-strict", "--tags", "a", "--tags", "b",
                                 "--mode", "slow", "--ratio", "0.5"])
    assert r.exit_code == 0, r.output
    assert seen["given"] == {"count": 5, "cache": False, "loud": True, "strict": False, "tags": ["a", "b"],
                             "mode": "slow", "ratio": 0.5}
    assert seen["config"].cache is False and seen["config"].tags == ["a", "b"]


@pytest.mark.parametrize("args", [["--count", "0"], ["--count", "10"], ["--ratio", "0"], ["--mode", "medium"]])
def test_click_refuses_what_the_field_refuses(args):
    cmd, _ = _command()
    r = CliRunner().invoke(cmd, args)
    assert r.exit_code == 2 and "Invalid value" in r.output


class Lora(StrictModel):
    r: int = 16
    alpha: int = 32


class Training(StrictModel):
    max_steps: int = -1
    learning_rate: float = 2e-4
    seed: int = 0


class Data(StrictModel):
    seed: int = 0
    name: str = "d"


class Train(StrictModel):
    model: str | None = None
    system: str | None = None
    lora: Lora = Lora()
    training: Training = Training()
    data: Data = Data()


def test_a_flat_key_naming_one_nested_field_sets_it():
    cfg = build_config(Train, None, ["max_steps=3", "r=8", "model=m"])
    assert (cfg.training.max_steps, cfg.lora.r, cfg.model) == (3, 8, "m")
    assert parse_sets(["alpha=4"], Train) == {"lora": {"alpha": 4}}
    assert parse_sets(["alpha=4"]) == {"alpha": 4}  # without a model, keys are taken as written


def test_an_ambiguous_flat_key_lists_the_candidates():
    with pytest.raises(BadInput, match=r"--set seed: ambiguous, it could be training\.seed or data\.seed"):
        build_config(Train, None, ["seed=1"])
    assert build_config(Train, None, ["data.seed=1"]).data.seed == 1


def test_an_unknown_key_suggests_the_closest():
    with pytest.raises(BadInput, match=r"unknown key 'max_stepz'; did you mean 'training\.max_steps'\?"):
        build_config(Train, None, ["max_stepz=3"])
    with pytest.raises(BadInput, match=r"unknown key 'lora\.rr'; did you mean 'lora\.r'"):
        build_config(Train, None, ["lora.rr=3"])
    with pytest.raises(BadInput, match="unknown key 'zzzz'$"):
        build_config(Train, None, ["zzzz=3"])


def test_values_are_read_as_the_field_type_takes_them():
    cfg = build_config(Train, None, ["system=yes", "model=3", "learning_rate=1e-4", "name=null"])
    # YAML would read `yes` as true and `3` as an int: the fields take text, so they get the text
    assert cfg.system == "yes" and cfg.model == "3"
    assert cfg.training.learning_rate == 1e-4  # `1e-4` is text in YAML 1.1; the float field reads it
    assert cfg.data.name == "null"
    with pytest.raises(BadInput, match="training.max_steps: Input should be a valid integer"):
        build_config(Train, None, ["max_steps=many"])


def test_train_config_flat_keys_reach_the_library_sections():
    from factory.trainers.run import load_config

    cfg = load_config(None, ["max_steps=3", "r=8", "beta=0.2", "tuning=full", "learning_rate=1e-4"])
    assert cfg.training == {"max_steps": 3, "beta": 0.2, "learning_rate": "1e-4"} and cfg.lora["r"] == 8
    assert cfg.tuning == "full"
    with pytest.raises(BadInput, match=r"unknown key 'max_stepz'; did you mean 'training\.max_steps'"):
        load_config(None, ["max_stepz=3"])
    with pytest.raises(BadInput, match="unknown key 'output_dir'"):  # factory owns it (--out), not the section
        load_config(None, ["output_dir=x"])


def test_judge_takes_config_file_and_set_and_flags_win(tmp_path, openai_stub):
    """`factory judge --config FILE --set k=v`: defaults < file < --set < typed flags, one line on a bad key."""
    import re

    from factory.cli.main import cli
    from factory.store import Store
    from tests.helpers import write_jsonl

    home = tmp_path / "home"
    rows = [{"id": f"r{i}", "instruction": f"Say something about topic {i}.", "response": f"topic {i} is fine."}
            for i in range(10)]
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "datasets", "import", str(write_jsonl(tmp_path / "a.jsonl", rows)),
                               "--name", "a"]).exit_code == 0
    (tmp_path / "judge.yaml").write_text("min_score: 3\nrepeats: 2\nmax_tokens: 64\n")

    def grade(call):
        topic = int(re.search(r"topic (\d+)", call["prompt"]).group(1))
        return f"Fine.\nRating: [[{topic + 1}]]"

    openai_stub(responder=grade, key="sk-test")
    base = ["--home", str(home), "-q", "judge", "a", "--with", "openai:stub-model", "--no-structured"]
    r = runner.invoke(cli, [*base, "--config", str(tmp_path / "judge.yaml"), "--set", "min_score=6",
                            "--repeats", "1"])
    assert r.exit_code == 0, r.output
    bad = runner.invoke(cli, [*base, "--set", "min_scor=6"])
    judge = Store(home).resolve(r.stdout.strip().splitlines()[-1]).manifest.model_extra["judge"]
    # min_score from --set over the file, repeats from the flag over the file, max_tokens from the file
    assert judge["min_score"] == 6 and judge["repeats"] == 1 and judge["structured"] is False
    assert Store(home).resolve(r.stdout.strip().splitlines()[-1]).manifest.config["max_tokens"] == 64
    assert bad.exit_code == 2 and "unknown key 'min_scor'; did you mean 'min_score'?" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
