"""`--batch`: OpenAI's Batch API and Anthropic's Message Batches, through the real SDKs against the stub."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import REPO, write_jsonl

ROWS = [{"id": f"r{i}", "instruction": f"Write a haiku about lake number {i}."} for i in range(5)]
CONFIG = """prices:
  stub-model: {input: 1000, output: 2000}
providers:
  openai: {batch_poll_s: 0.05, batch_max_requests: MAXREQ}
  anthropic: {batch_poll_s: 0.05, batch_max_requests: MAXREQ}
"""


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


@pytest.fixture
def stub(monkeypatch):
    servers: list[StubLLMServer] = []

    def start(**options):
        server = StubLLMServer(**options).start()
        servers.append(server)
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-batch-test")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-batch-test")
        return server

    yield start
    for s in servers:
        s.stop()


def make_home(tmp_path, name, max_requests=50_000):
    home = tmp_path / name
    r = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "d.jsonl", ROWS)), "--name", "d")
    assert r.exit_code == 0, r.output
    (home / "config.yaml").write_text(CONFIG.replace("MAXREQ", str(max_requests)))
    return home


@pytest.mark.parametrize("llm", ["openai:stub-model", "anthropic:stub-model"])
def test_a_batch_build_matches_the_online_build_at_half_the_cost(tmp_path, stub, llm):
    server = stub(batch_latency_s=0.3)
    online_home, batch_home = make_home(tmp_path, "online"), make_home(tmp_path, "batch")
    online = invoke(online_home, "generate", "d", "--llm", llm, "--temperature", "0")
    assert online.exit_code == 0, online.output
    assert server.stats()["batches"] == 0
    server.reset()
    batch = invoke(batch_home, "generate", "d", "--llm", llm, "--temperature", "0", "--batch")
    assert batch.exit_code == 0, batch.output
    stats = server.stats()
    assert stats["batches"] == 1 and stats["batch_lines"] == 5
    assert sum(v for k, v in stats["by_api"].items() if not k.endswith("-batch")) == 0  # no online call
    a, b = Store(online_home).resolve(online.stdout.strip()), Store(batch_home).resolve(batch.stdout.strip())
    assert a.version == b.version  # the same answers make the same version
    assert a.read().drop("model").equals(b.read().drop("model"))
    assert a.manifest.cost.usd > 0 and b.manifest.cost.usd == pytest.approx(a.manifest.cost.usd / 2)
    assert b.manifest.cost.prompt_tokens == a.manifest.cost.prompt_tokens
    assert b.manifest.model_extra["llm"]["batches"] == {"submitted": 1, "resumed": 0}
    server.reset()
    again = invoke(batch_home, "generate", "d", "--llm", llm, "--temperature", "0", "--batch")
    assert again.exit_code == 0 and "unchanged" in again.output and server.stats()["batches"] == 0


def test_cached_answers_are_never_submitted_and_a_large_job_is_split(tmp_path, stub):
    server = stub(batch_max_requests=2)  # the stub refuses a batch above 2 requests, as the APIs do above theirs
    home = make_home(tmp_path, "home", max_requests=2)
    first = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--n", "1", "--name", "one")
    assert first.exit_code == 0, first.output
    server.reset()
    r = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--batch")
    assert r.exit_code == 0, r.output
    stats = server.stats()
    assert stats["batch_lines"] == 4 and stats["batches"] == 2 and stats["files"] == 2
    df = Store(home).resolve(r.stdout.strip()).read()
    assert df.height == 5 and df["error"].null_count() == 5


def test_expired_and_failed_requests_go_into_a_follow_up_batch_then_fail(tmp_path, stub):
    home = make_home(tmp_path, "home")
    server = stub(script=["timeout", "500"], fault_match="lake number 1")  # expires, then 500, then ok
    r = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--batch")
    assert r.exit_code == 0, r.output
    assert server.stats()["batches"] == 3 and server.stats()["batch_lines"] == 5 + 1 + 1
    df = Store(home).resolve(r.stdout.strip()).read()
    assert df["error"].null_count() == 5
    server.stop()
    home2 = make_home(tmp_path, "home2")
    server = stub(script=["500", "500", "500", "500"], fault_match="lake number 2")
    r = invoke(home2, "generate", "d", "--llm", "anthropic:stub-model", "--batch")
    assert r.exit_code == 0, r.output
    assert server.stats()["batches"] == 3  # batch_retries=2 follow-ups, then the row fails
    version = Store(home2).resolve(r.stdout.strip())
    failed = version.read().filter(version.read()["error"].is_not_null())
    assert failed["id"].to_list() == ["r2"] and "api_error" in failed["error"][0]
    assert version.manifest.counters["failed"] == 1


def test_dry_run_shows_online_and_batch_cost_and_batch_needs_an_api(tmp_path, stub):
    stub()
    home = make_home(tmp_path, "home")
    dry = invoke(home, "generate", "d", "--llm", "openai:stub-model", "--dry-run")
    assert dry.exit_code == 0 and "online, $" in dry.output and "with --batch" in dry.output
    online = float(dry.output.split("at most $")[1].split()[0])
    batch = float(dry.output.split("online, $")[1].split()[0])
    assert batch == pytest.approx(online / 2, rel=1e-3)
    bad = invoke(home, "generate", "d", "--llm", "hf:whatever", "--batch")
    assert bad.exit_code == 2 and "--batch needs a provider with a batch API" in bad.output


def _journaled(home) -> bool:
    import sqlite3
    from contextlib import closing

    path = home / "cache" / "llm.sqlite"
    if not path.exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM batch_requests").fetchone()[0] > 0
    except sqlite3.OperationalError:  # the table is not made yet, or the writer holds a lock
        return False


def test_a_batch_run_killed_while_polling_resumes_without_submitting_again(tmp_path):
    home = make_home(tmp_path, "home")
    with StubLLMServer(batch_latency_s=120) as server:
        env = {**os.environ, "FACTORY_HOME": str(home), "OPENAI_BASE_URL": server.openai_base_url,
               "OPENAI_API_KEY": "sk-batch-test"}
        args = [sys.executable, "-m", "factory", "-q", "generate", "d", "--llm", "openai:stub-model", "--batch"]
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.stats()["batches"] == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert server.stats()["batches"] == 1, proc.communicate()[1]
        while not _journaled(home) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)  # the batch id reaches the cache just after the server made the batch
        assert _journaled(home), "the run never recorded its batch"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert Store(home).versions("d-answers") == []
        server.configure(batch_latency_s=0.0)  # the batch finishes while nobody is watching
        rerun = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        stats = server.stats()
    assert stats["batches"] == 1 and stats["files"] == 1  # nothing submitted again
    df = Store(home).resolve(rerun.stdout.strip()).read()
    assert df.height == 5 and df["error"].null_count() == 5


def test_eval_under_batch_sends_model_and_judge_through_batches(tmp_path, stub):
    import json

    from tests.test_eval_mt_bench import grader
    from tests.test_judge_cli import system_of

    judge = grader([])
    server = stub()
    server.responder = lambda call: judge(call) if system_of(call) else f"My answer to: {call['prompt']}"
    home = make_home(tmp_path, "home")
    questions = write_jsonl(tmp_path / "q.jsonl", [{"category": "math", "turns": ["What is 2 + 2?"],
                                                    "reference": ["4"]}, {"category": "chat", "turns": "Say hi."}])
    out = tmp_path / "r.json"
    r = invoke(home, "eval", "mt-bench", "--model", "openai:stub-model", "--judge", "openai:stub-model",
               "--questions", str(questions), "--out", str(out), "--batch")
    assert r.exit_code == 0, r.output
    stats = server.stats()
    assert stats["batches"] >= 2 and sum(v for k, v in stats["by_api"].items() if not k.endswith("-batch")) == 0
    assert json.loads(out.read_text())["graded"] == 2


def test_factory_run_batch_sends_each_api_stage_through_batches_and_online_reruns_skip_them(tmp_path, stub):
    import json

    from tests.test_judge_cli import ROWS as TOPICS
    from tests.test_judge_cli import scheme_and_judge

    server = stub(responder=scheme_and_judge)
    home = make_home(tmp_path, "home")
    seeds = write_jsonl(tmp_path / "topics.jsonl", TOPICS)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""name: batched
vars: {{teacher: openai:stub-model}}
stages:
  - {{name: topics, kind: import, source: {seeds}}}
  - {{name: answers, kind: generate, from: topics, llm: "${{teacher}}"}}
  - {{name: judged, kind: judge, from: answers, with: "${{teacher}}", rubric: quality, keep_all: true}}
""")
    r = invoke(home, "run", str(recipe), "--batch")
    assert r.exit_code == 0, r.output
    stats = server.stats()
    assert stats["batches"] == 2 and stats["batch_lines"] == 2 * len(TOPICS)  # one batch per LLM stage
    assert sum(v for k, v in stats["by_api"].items() if not k.endswith("-batch")) == 0  # nothing online
    judged = Store(home).resolve("judged").read()
    assert judged["judge_score"].null_count() == 0 and judged.height == len(TOPICS)
    server.reset()
    again = invoke(home, "run", str(recipe))  # online now: the same outputs, so every stage is done already
    assert again.exit_code == 0, again.output
    run = json.loads((home / "runs" / "batched" / "run.json").read_text())
    assert [s["status"] for s in run["stages"]] == ["skipped"] * 3
    assert server.stats()["requests"] == 0


def test_progress_counts_batches_submitted_in_progress_and_done_from_the_providers_status(tmp_path, stub):
    from factory.llm import ChatRequest, load_llm
    from factory.llm.batch import BatchState
    from factory.llm.progress import batch_summary
    from factory.llm.stats import RunStats

    stats = RunStats(batch_status={"a": BatchState("in_progress", False, 40, 100), "b": BatchState("completed", True,
                                   100, 100), "c": BatchState("validating", False, 0, 50)})
    assert batch_summary(stats) == ("batches: 3 submitted, 2 in progress, 1 done (1 completed, 1 in_progress, "
                                    "1 validating), 140/250 requests")
    server = stub(batch_max_requests=2)
    home = make_home(tmp_path, "home", max_requests=2)
    llm = load_llm("openai:stub-model", home=home, batch=True, progress=False)
    out = llm.generate_sync([ChatRequest(messages=[{"role": "user", "content": f"q {i}"}]) for i in range(5)])
    assert all(c.ok for c in out) and server.stats()["batches"] == 3
    # what the bar showed last: every batch done, with the request counts the stub reported
    assert batch_summary(llm.stats) == "batches: 3 submitted, 0 in progress, 3 done (3 completed), 5/5 requests"
