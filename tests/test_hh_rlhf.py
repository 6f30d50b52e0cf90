"""The `hh-rlhf` stage and `factory datasets convert`: HH-RLHF dialogues to prompt/chosen/rejected rows."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.data import seed_path
from factory.pipeline.hh_rlhf import HHRLHF, HHConfig, dialogue_text, parse_dialogue, split_pair
from factory.store import Store
from tests.helpers import run_factory, write_jsonl

TWO_TURNS = ("\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: What is 2+2?\n\nAssistant: ")


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_dialogues_split_into_prompt_and_answers():
    assert parse_dialogue("\n\nHuman: a\nb\n\nAssistant: c") == [{"role": "user", "content": "a\nb"},
                                                                  {"role": "assistant", "content": "c"}]
    assert parse_dialogue("no turns at all") is None
    prompt, chosen, rejected = split_pair(TWO_TURNS + "4.", TWO_TURNS + "5.")
    assert [m["role"] for m in prompt] == ["user", "assistant", "user"] and prompt[2]["content"] == "What is 2+2?"
    assert (chosen, rejected) == ("4.", "5.")
    assert split_pair("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: other\n\nAssistant: b") is None  # prompts differ
    assert split_pair("\n\nHuman: a\n\nAssistant: b\n\nHuman: c", "\n\nHuman: a\n\nAssistant: b") is None
    assert split_pair("\n\nAssistant: only an answer", "\n\nAssistant: another") is None  # no prompt


def test_standard_format_keeps_text():
    stage = HHRLHF(HHConfig(format="standard"))
    [row] = stage.convert([{"id": "1", "chosen": TWO_TURNS + "4.", "rejected": TWO_TURNS + "5."}])
    assert row["prompt"].endswith("\n\nHuman: What is 2+2?\n\nAssistant:") and row["chosen"] == " 4."
    assert list(row) == ["id", "prompt", "chosen", "rejected"]


def test_convert_the_shipped_seeds_through_the_cli(tmp_path):
    home = tmp_path / "home"
    assert invoke(home, "datasets", "import", "seeds:hh", "--name", "hh").exit_code == 0
    r = invoke(home, "datasets", "convert", "hh-rlhf", "hh", "--name", "hh-dpo")
    assert r.exit_code == 0, r.output
    store = Store(home)
    version = store.resolve(r.stdout.strip())
    m = version.manifest
    assert m.stage.label() == "stage:hh-rlhf@1" and [i.ref() for i in m.inputs] == [store.resolve("hh").ref]
    assert m.counters == {"kept": 26, "dropped": 0, "failed": 0} and m.rows == 26
    df = pl.read_parquet(version.files())
    seeds = {row["id"]: row for row in map(json.loads, seed_path("hh").read_text().splitlines())}
    for row in df.iter_rows(named=True):  # prompt + answer gives back the original dialogue, for every pair
        original = seeds[row["id"]]
        assert dialogue_text(row["prompt"] + row["chosen"]) == original["chosen"]
        assert dialogue_text(row["prompt"] + row["rejected"]) == original["rejected"]
    first = df.row(0, named=True)
    assert first["id"] == "hh-seed-0001" and first["prompt"][0]["role"] == "user"
    assert first["chosen"][0]["role"] == "assistant" and first["chosen"][0]["content"].startswith("Bring a pot")
    multi = df.filter(pl.col("prompt").list.len() == 3)
    assert multi.height == 3  # the seed README: 3 two-turn dialogues
    again = invoke(home, "datasets", "convert", "hh-rlhf", "hh", "--name", "hh-dpo")
    assert again.stdout.strip() == version.ref and "unchanged" in again.stderr
    std = invoke(home, "datasets", "convert", "hh-rlhf", "hh", "--name", "hh-dpo", "--set", "format=standard")
    assert std.exit_code == 0 and std.stdout.strip() != version.ref  # another recipe, another version
    assert store.resolve(std.stdout.strip()).manifest.columns["prompt"] == "String"


def test_broken_pairs_are_dropped_and_counted(tmp_path):
    home = tmp_path / "home"
    rows = [{"id": "ok", "chosen": TWO_TURNS + "4.", "rejected": TWO_TURNS + "5."},
            {"id": "bad", "chosen": "\n\nHuman: x\n\nAssistant: y", "rejected": "\n\nHuman: z\n\nAssistant: y"}]
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--name", "p")
    r = invoke(home, "datasets", "convert", "hh-rlhf", "p", "--name", "q")
    assert r.exit_code == 0 and "1 rows kept, 1 dropped" in r.stderr
    assert Store(home).resolve("q").read()["id"].to_list() == ["ok"]


@pytest.mark.parametrize("args, code, message", [
    (["hh-rlhf", "plain", "--name", "x"], 2, "lacks columns chosen, rejected"),
    (["hh-rlhf", "nope", "--name", "x"], 2, "unknown dataset 'nope'"),
    (["hh-rlhf", "plain", "--name", "x", "--set", "format=fancy"], 2, "config: format:"),
    (["hh-rlhf", "plain", "--name", "../x"], 2, "invalid dataset name"),
])
def test_convert_bad_input(tmp_path, args, code, message):
    home = tmp_path / "home"
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", [{"text": "hi"}])), "--name", "plain")
    r = run_factory("datasets", "convert", *args, home=home)
    assert r.returncode == code and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert Store(home).names() == ["plain"]


def test_sft_conversion_makes_seed_rows_trainable(tmp_path):
    home = tmp_path / "home"
    assert run_factory("datasets", "import", "seeds:dolly", "--name", "dolly", home=home).returncode == 0
    r = run_factory("datasets", "convert", "sft", "dolly", "--name", "dolly-sft", home=home)
    assert r.returncode == 0, r.stderr
    v = Store(home).resolve(r.stdout.strip())
    df = v.read()
    assert df.height == 64 and v.manifest.stage.name == "sft" and v.manifest.inputs[0].name == "dolly"
    with_context = df.filter(df["context"] != "").row(0, named=True)
    assert [m["role"] for m in with_context["messages"]] == ["user", "assistant"]
    assert with_context["messages"][0]["content"].endswith(with_context["context"])
    assert with_context["messages"][1]["content"] == with_context["response"]
    bad = run_factory("datasets", "convert", "sft", "dolly", "--name", "x", "--set", "response_column=nope",
                      home=home)
    assert bad.returncode == 2 and "lacks column nope" in bad.stderr
