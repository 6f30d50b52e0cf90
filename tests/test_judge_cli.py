"""`factory judge`: score and filter a dataset with a judge LLM served by the stub, through the real SDKs."""

from __future__ import annotations

import json
import re
from statistics import fmean, pstdev

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.llm.runner import RunSettings
from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import run_factory, write_jsonl
from tests.test_judge_parse import FIVE, SCORE_TABLE, TEN

N = 12
ROWS = [{"id": f"r{i}", "instruction": f"Say something about topic {i}."} for i in range(N)]


def system_of(call: dict) -> str:
    """The system prompt as either API carries it (OpenAI keeps it among the messages)."""
    return call["system"] or next((m["content"] for m in call["messages"] if m["role"] == "system"), "")


def topic_score(i: int) -> int:
    return i % 10 + 1


def scheme_and_judge(call: dict) -> str:
    """Answers generation calls; grades judge calls by the topic number in the answer (JSON when asked)."""
    topic = int(re.search(r"topic (\d+)", call["prompt"]).group(1))
    if not system_of(call):
        return f"Here is a fact about topic {topic}."
    if call["schema"] is not None:
        return json.dumps({"rationale": f"topic {topic} handled", "score": topic_score(topic)})
    return f"Reasonable answer.\nRating: [[{topic_score(topic)}]]"


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


@pytest.fixture
def stub_env(monkeypatch):
    def start(responder, **options):
        stub = StubLLMServer(responder=responder, **options).start()
        monkeypatch.setenv("OPENAI_BASE_URL", stub.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.anthropic_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-judge-test")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-judge-test")
        started.append(stub)
        return stub

    started: list[StubLLMServer] = []
    yield start
    for stub in started:
        stub.stop()


def test_judge_filters_a_generated_dataset_and_the_rerun_is_free(tmp_path):
    home = tmp_path / "home"
    seeds = write_jsonl(tmp_path / "p.jsonl", ROWS)
    assert invoke(home, "datasets", "import", str(seeds), "--name", "p").exit_code == 0
    with StubLLMServer(responder=scheme_and_judge) as stub:
        env = {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "sk-judge-secret"}
        gen = run_factory("generate", "p", "--llm", "openai:stub-model", "--name", "answers", home=home, env=env)
        assert gen.returncode == 0, gen.stderr
        stub.reset()
        judged = run_factory("judge", "answers", "--with", "openai:stub-model", home=home, env=env)
        assert judged.returncode == 0, judged.stderr
        assert stub.stats()["requests"] == N
        stub.reset()
        again = run_factory("judge", "answers", "--with", "openai:stub-model", home=home, env=env)
        assert again.returncode == 0 and "unchanged" in again.stderr
        assert stub.stats()["requests"] == 0
    version = Store(home).resolve(judged.stdout.strip())
    assert again.stdout.strip() == version.ref
    expected_kept = [f"r{i}" for i in range(N) if topic_score(i) >= 7]
    df = version.read()
    assert df["id"].to_list() == expected_kept
    assert df["judge_score"].to_list() == [float(topic_score(int(i[1:]))) for i in expected_kept]
    assert set(df["judge_model"]) == {"openai:stub-model"} and df["judge_error"].null_count() == df.height
    assert df["judge_rationale"].to_list()[0].startswith("topic ")  # the structured (JSON) reply was read
    assert df["response"].to_list()[0].startswith("Here is a fact")  # the scheme's columns travel along
    m = version.manifest
    assert m.counters == {"kept": len(expected_kept), "dropped": N - len(expected_kept), "failed": 0}
    assert m.stage.kind == "judge" and m.stage.name == "quality" and m.inputs[0].name == "answers"
    judge = m.model_extra["judge"]
    assert judge["model"] == "openai:stub-model" and judge["rubric"] == {"name": "quality", "version": "1",
                                                                         "scale": [1, 10]}
    assert judge["min_score"] == 7 and judge["structured"] is True
    assert judge["stats"]["mean"] == pytest.approx(fmean(topic_score(i) for i in range(N)), abs=1e-4)
    assert "sk-judge-secret" not in (version.path / "manifest.json").read_text()


def test_reply_table_through_the_stub_keeps_unparsed_rows_with_their_error(tmp_path, stub_env):
    home = tmp_path / "home"
    cases = [(reply, expected, "quality") for reply, scale, expected in SCORE_TABLE if scale == TEN]
    cases += [(reply, expected, "helpfulness") for reply, scale, expected in SCORE_TABLE if scale == FIVE]
    rows = [{"id": i, "instruction": f"case {i}", "response": f"response for case {i}.", "rubric": rubric}
            for i, (_, _, rubric) in enumerate(cases)]
    stub = stub_env(lambda call: cases[int(re.search(r"case (\d+)", call["prompt"]).group(1))][0])
    write_jsonl(tmp_path / "t.jsonl", rows)
    assert invoke(home, "datasets", "import", str(tmp_path / "t.jsonl"), "--name", "t").exit_code == 0
    for rubric in ("quality", "helpfulness"):
        subset = [r for r in rows if r["rubric"] == rubric]
        write_jsonl(tmp_path / f"{rubric}.jsonl", subset)
        invoke(home, "datasets", "import", str(tmp_path / f"{rubric}.jsonl"), "--name", rubric)
        # One request at a time: rows finish in table order, so the early stop sees the same sequence each run.
        r = invoke(home, "judge", rubric, "--with", "openai:stub-model", "--rubric", rubric, "--keep-all",
                   "--no-structured", "--concurrency", "1")
        assert r.exit_code == 0, r.output
        df = Store(home).resolve(r.stdout.strip()).read()
        assert df.height == len(subset)
        for row in df.iter_rows(named=True):
            reply, expected, _ = cases[row["id"]]
            if isinstance(expected, float):
                assert (row["judge_score"], row["judge_error"]) == (expected, None), reply
            else:
                assert row["judge_score"] is None and expected in row["judge_error"], (reply, row["judge_error"])
                if reply.strip():  # an empty reply is a failed call (retried, never cached), not a reply to keep
                    assert row["judge_rationale"] == reply  # the raw reply is kept for a person to read
        errors = sum(isinstance(c[1], str) for c in cases if c[2] == rubric)
        counters = Store(home).resolve(r.stdout.strip()).manifest.counters
        assert counters == {"kept": len(subset) - errors, "dropped": 0, "failed": errors}
    stub.reset()  # a rerun takes the verdicts from the cache and asks again for exactly the unparsed rows
    again = invoke(home, "judge", "quality", "--with", "openai:stub-model", "--keep-all", "--no-structured")
    failed = sum(isinstance(c[1], str) for c in cases if c[2] == "quality")
    # an empty reply is a failed call, asked again within the run too (1 + schema_retries tries)
    empties = sum(1 for reply, _, rubric in cases if rubric == "quality" and not reply.strip())
    sent = failed - empties + empties * (1 + RunSettings().schema_retries)
    assert again.exit_code == 0 and stub.stats()["requests"] == sent > 0


def test_repeats_report_mean_spread_and_agreement(tmp_path, stub_env):
    home = tmp_path / "home"
    rows = [{"id": i, "instruction": f"topic {i}", "response": f"about topic {i}"} for i in range(6)]

    def noisy(call):  # even rows: every sample agrees; odd rows: samples 5, 6, 7
        topic = int(re.search(r"topic (\d+)", call["prompt"]).group(1))
        return "[[8]]" if topic % 2 == 0 else f"[[{5 + call['choice']}]]"

    stub = stub_env(noisy)
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "r.jsonl", rows)), "--name", "r")
    r = invoke(home, "judge", "r", "--with", "openai:stub-model", "--repeats", "3", "--keep-all")
    assert r.exit_code == 0, r.output
    assert stub.stats()["requests"] == 6  # K samples come from one request (n=3)
    version = Store(home).resolve(r.stdout.strip())
    df = version.read().sort("id")
    assert df["judge_score"].to_list() == [8.0, 6.0] * 3
    assert df["judge_spread"].to_list() == pytest.approx([0.0, pstdev([5, 6, 7])] * 3)
    stats = version.manifest.model_extra["judge"]["stats"]
    assert stats["repeats"] == 3 and stats["agreement"] == 0.5 and stats["agreement_within_1"] == 0.5
    assert stats["spread"] == pytest.approx(pstdev([5, 6, 7]) / 2, abs=1e-4) and stats["mean"] == 7.0
    assert "agreement 50%" in r.output


def test_anthropic_judge_gets_a_json_schema_and_its_reply_is_read(tmp_path, stub_env):
    home = tmp_path / "home"
    seen = []

    def claude(call):
        seen.append((call["api"], call["schema"], system_of(call)))
        return json.dumps({"rationale": "fine", "score": 4})

    stub_env(claude)
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "a.jsonl", ROWS[:3])), "--name", "a")
    # `instruction` alone is not enough for a rubric that grades a response
    bad = invoke(home, "judge", "a", "--with", "anthropic:claude-test", "--rubric", "helpfulness")
    assert bad.exit_code == 2 and "lacks column response" in bad.output and "rubric helpfulness" in bad.output
    rows = [{**r, "response": "an answer"} for r in ROWS[:3]]
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "b.jsonl", rows)), "--name", "b")
    r = invoke(home, "judge", "b", "--with", "anthropic:claude-test", "--rubric", "helpfulness")
    assert r.exit_code == 0, r.output
    assert [s[0] for s in seen] == ["anthropic"] * 3 and all(s[1]["required"] == ["rationale", "score"] for s in seen)
    assert "from 1 to 5" in seen[0][2]
    df = Store(home).resolve(r.stdout.strip()).read()
    assert df["judge_score"].to_list() == [4.0] * 3 and df["judge_rationale"].to_list() == ["fine"] * 3


def test_bad_input_is_one_line_and_names_the_problem(tmp_path, stub_env):
    home = tmp_path / "home"
    stub = stub_env(lambda call: "[[5]]")
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "q.jsonl", [{"question": "x"}])), "--name", "q")
    r = invoke(home, "judge", "q", "--with", "openai:stub-model")
    assert r.exit_code == 2 and "lacks columns instruction, response" in r.output and "has: question" in r.output
    r = invoke(home, "judge", "q", "--with", "openai:stub-model", "--rubric", "vibes")
    assert r.exit_code == 2 and "unknown rubric 'vibes'" in r.output and "mt-bench-pair" in r.output
    rows = [{"instruction": "x", "response": "y"}]
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--name", "p")
    r = invoke(home, "judge", "p", "--with", "openai:stub-model", "--min-score", "11")
    assert r.exit_code == 2 and "--min-score 11 is outside the quality rubric's scale 1–10" in r.output
    r = invoke(home, "judge", "p", "--with", "openai:stub-model", "--rubric", "helpfulness", "--min-score", "7")
    assert r.exit_code == 2 and "scale 1–5" in r.output
    dry = invoke(home, "judge", "p", "--with", "openai:stub-model", "--dry-run")
    assert dry.exit_code == 0 and "1 requests to send" in dry.output
    assert stub.stats()["requests"] == 0 and Store(home).versions("p-judged") == []


def test_a_judge_failing_on_most_rows_stops_early(tmp_path, stub_env):
    home = tmp_path / "home"
    rows = [{"id": i, "instruction": f"q {i}", "response": f"a {i}"} for i in range(60)]
    stub = stub_env(lambda call: "I'm sorry, I cannot judge this.")
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--name", "p")
    r = invoke(home, "judge", "p", "--with", "openai:stub-model", "--concurrency", "1")
    assert r.exit_code == 1
    assert "stopped: the judge failed on 20 of the last 20 rows" in r.output and "declined to give a score" in r.output
    assert stub.stats()["requests"] < 30  # it stopped sending, not just reporting at the end
    assert Store(home).versions("p-judged") == []
    stub.configure(rate_500=1.0)  # calls that fail outright: the LLM layer's breaker stops the run
    stub.reset()
    r = invoke(home, "judge", "p", "--with", "openai:stub-model", "--no-cache", "--max-retries", "0",
               "--concurrency", "2")
    assert r.exit_code == 1 and "stopped:" in r.output and "HTTP 500" in r.output
    assert stub.stats()["requests"] < 60 and Store(home).versions("p-judged") == []
