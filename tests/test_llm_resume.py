"""Resume: SIGKILL a real `factory generate` half-way through 400 requests; the rerun pays only for the rest."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import REPO, run_factory, write_jsonl

N = 400
CONCURRENCY = 8


@pytest.mark.slow
def test_kill_9_then_rerun_sends_nothing_twice(tmp_path):
    home = tmp_path / "home"
    rows = [{"id": f"r{i}", "instruction": f"Describe llama number {i} in one line."} for i in range(N)]
    assert run_factory("datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--name", "prompts",
                       home=home).returncode == 0
    with StubLLMServer(latency_s=0.05) as stub:
        env = {**os.environ, "FACTORY_HOME": str(home), "OPENAI_BASE_URL": stub.openai_base_url,
               "OPENAI_API_KEY": "test-key"}
        cmd = [sys.executable, "-m", "factory", "-q", "generate", "prompts", "--llm", "openai:stub-model",
               "--concurrency", str(CONCURRENCY), "--name", "answers"]
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while stub.stats()["requests"] < N // 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        before = stub.stats()
        assert N // 2 <= before["requests"] < N, "killed too late to test resume"

        assert Store(home).versions("answers") == []  # no half version
        with sqlite3.connect(home / "cache" / "llm.sqlite") as db:
            finished = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        assert finished >= N // 2 - CONCURRENCY

        stub.reset()
        rerun = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        after = stub.stats()

    # exactly the rows without a stored answer were asked again; nothing finished before the kill was re-sent
    assert after["requests"] == N - finished
    resent = set(before["by_key"]) & set(after["by_key"])
    assert len(resent) <= CONCURRENCY  # at most the calls in flight at the kill
    version = Store(home).resolve("answers")
    df = version.read()
    assert df.height == N and df["error"].null_count() == N
    assert df["id"].to_list() == [r["id"] for r in rows]  # input order kept
    assert version.manifest.counters == {"kept": N, "dropped": 0, "failed": 0}
    assert version.manifest.cost.requests == N  # cost covers answers bought by both runs
