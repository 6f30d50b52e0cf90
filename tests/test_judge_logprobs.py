"""Judges that score by the score tokens' probabilities (G-Eval): local hf: models and OpenAI logprobs."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.llm.choices import expectation, masses, plan
from factory.store import Store
from tests.helpers import write_jsonl

ROWS = [{"id": i, "instruction": f"Name a color, case {i}.", "response": f"Blue, case {i}."} for i in range(5)]


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


def test_multi_token_choices_share_their_prefix_mass():
    # "1", "10", "2" as token paths (1,), (1, 0), (2,); P(1)=.5, P(2)=.3, P(0 | 1)=.4
    ids = [(1,), (1, 0), (2,)]
    table = {((), 1): .5, ((), 2): .3, ((1,), 0): .4}
    got = masses(ids, lambda context, token: table.get((context, token), 0.0))
    assert got == pytest.approx([.5 * .6, .5 * .4, .3])
    assert plan(ids) == [(1,)]  # one appended token gives both distributions
    score, dist, mass = expectation(dict(zip(["1", "10", "2"], got, strict=True)),
                                    {"1": 1.0, "10": 10.0, "2": 2.0})
    assert mass == pytest.approx(.8) and sum(dist.values()) == pytest.approx(1.0)
    assert score == pytest.approx((.3 * 1 + .2 * 10 + .3 * 2) / .8)


@pytest.fixture
def long_tiny(tmp_path, tiny_dir):
    """The tiny model with room for a rubric's prompt (rotary positions: the weights do not change)."""
    import shutil

    out = shutil.copytree(tiny_dir, tmp_path / "tiny-long")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    return out


def test_local_judge_scores_every_row_by_token_probabilities(tmp_path, long_tiny):
    home, tiny_dir = tmp_path / "home", long_tiny
    seeds = write_jsonl(tmp_path / "a.jsonl", ROWS)
    assert invoke(home, "datasets", "import", str(seeds), "--name", "a").exit_code == 0
    r = invoke(home, "judge", "a", "--with", f"hf:{tiny_dir}", "--keep-all")
    assert r.exit_code == 0, r.output
    version = Store(home).resolve(r.stdout.strip())
    df = version.read()
    assert df["judge_error"].is_null().all() and df["judge_score"].is_not_null().all()
    for row in df.iter_rows(named=True):
        probs = json.loads(row["judge_probs"])
        assert list(probs) == [str(i) for i in range(1, 11)] and sum(probs.values()) == pytest.approx(1, abs=1e-4)
        assert row["judge_score"] == pytest.approx(sum(int(k) * p for k, p in probs.items()), abs=1e-3)
    judge = version.manifest.model_extra["judge"]
    assert judge["scoring"] == "logprobs" and 0 < judge["stats"]["score_token_mass"] <= 1
    assert version.manifest.counters == {"kept": 5, "dropped": 0, "failed": 0}
    # --scoring verdict on the same model asks it to write (a tiny model writes no verdict: rows fail, honestly)
    args = ["judge", "a", "--with", f"hf:{tiny_dir}", "--keep-all", "--scoring", "verdict", "--max-tokens", "4",
            "--name", "v"]
    r = invoke(home, *args)
    assert r.exit_code == 1 and "produced no usable rows from 5 asked for: failed 5" in r.output
    r = invoke(home, *args, "--allow-empty")
    assert r.exit_code == 0, r.output
    judged = Store(home).resolve("v")
    assert judged.manifest.model_extra["judge"]["scoring"] == "verdict" and judged.manifest.counters["failed"] == 5


def test_openai_logprobs_scoring_reads_top_logprobs(tmp_path, openai_stub):
    home = tmp_path / "home"
    seen = []

    def judge(call):
        seen.append(call["body"])
        alts = {"7": {"7": math.log(.6), "8": math.log(.3), "6": math.log(.1)}}
        return {"text": "[[7]]", "alternatives": alts}

    openai_stub(responder=judge, key="k")
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "a.jsonl", ROWS)), "--name", "a")
    r = invoke(home, "judge", "a", "--with", "openai:stub", "--scoring", "logprobs", "--min-score", "7.1")
    assert r.exit_code == 0, r.output
    df = Store(home).resolve(r.stdout.strip()).read()
    assert df["judge_score"].to_list() == pytest.approx([7.2] * 5)
    assert json.loads(df["judge_probs"][0]) == pytest.approx({**{str(i): 0.0 for i in range(1, 11)},
                                                               "6": .1, "7": .6, "8": .3})
    assert seen[0]["logprobs"] is True and seen[0]["top_logprobs"] == 20 and "response_format" not in seen[0]
    assert "rating alone" in seen[0]["messages"][0]["content"]
    # the default for an API judge stays the written verdict (the same reply parses as 7)
    r = invoke(home, "judge", "a", "--with", "openai:stub", "--name", "v", "--min-score", "7")
    assert r.exit_code == 0 and Store(home).resolve("v").read()["judge_score"].to_list() == [7.0] * 5
    # an API without logprobs, or a pairwise rubric, is told so
    r = invoke(home, "judge", "a", "--with", "anthropic:claude-test", "--scoring", "logprobs")
    assert r.exit_code == 2 and "returns no token probabilities" in r.output


def test_inspect_names_the_scoring():
    r = CliRunner().invoke(cli, ["judges", "inspect", "quality"])
    assert r.exit_code == 0 and "G-Eval" in r.output and "logprobs" in r.output
