"""`--executor ray` (local Ray, 2 CPUs) against the OpenAI-compatible stub: the same version id and rows as the local
executor, and a driver killed with SIGKILL resumes from its shards without re-sending a finished request."""

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

pytest.importorskip("ray.data", reason='the Ray executor needs the scale extra: pip install "dataset-factory[scale]"')

pytestmark = pytest.mark.slow  # every run starts a local Ray (seconds)


def _env(stub, home):
    return {**os.environ, "FACTORY_HOME": str(home), "OPENAI_BASE_URL": stub.openai_base_url,
            "OPENAI_API_KEY": "test-key"}


def test_ray_build_equals_local(tmp_path):
    homes = {ex: tmp_path / ex for ex in ("local", "ray")}
    out = {}
    with StubLLMServer() as stub:
        for ex, home in homes.items():
            assert run_factory("datasets", "import", "seeds:dolly", "--name", "dolly-seed", home=home).returncode == 0
            stub.reset()
            r = run_factory("build", "evol-instruct", "--from", "dolly-seed", "--llm", "openai:stub-model",
                            "--n", "12", "--set", "rounds=2", "--executor", ex, "--shard-rows", "4",
                            "--concurrency", "4",
                            home=home, env=_env(stub, home), timeout=300)
            assert r.returncode == 0, r.stderr
            out[ex] = (r.stdout.strip(), Store(home).resolve(r.stdout.strip()), stub.stats()["requests"])
    (ref_l, v_l, sent_l), (ref_r, v_r, sent_r) = out["local"], out["ray"]
    assert ref_l == ref_r  # same version id
    assert v_l.read().height > 4  # several shards' worth (4 seeds a shard)
    assert v_r.read().to_dicts() == v_l.read().to_dicts()
    assert v_r.manifest.counters == v_l.manifest.counters
    assert v_r.manifest.cost.requests == v_l.manifest.cost.requests == sent_l == sent_r
    assert not (homes["ray"] / "shards" / "evol-instruct" / v_r.version).exists()  # shards go once committed


N, SHARD, CONCURRENCY, WORKERS = 160, 8, 4, 2


def test_ray_generate_killed_driver_resumes(tmp_path):
    rows = [{"id": f"r{i}", "instruction": f"Describe llama number {i} in one line."} for i in range(N)]
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    home, local_home = tmp_path / "home", tmp_path / "local"
    for h in (home, local_home):
        assert run_factory("datasets", "import", str(prompts), "--name", "prompts", home=h).returncode == 0
    args = ["-q", "generate", "prompts", "--llm", "openai:stub-model", "--concurrency", str(CONCURRENCY),
            "--name", "answers", "--shard-rows", str(SHARD)]
    with StubLLMServer(latency_s=0.05) as stub:
        clean = run_factory(*args, home=local_home, env=_env(stub, local_home), timeout=300)
        assert clean.returncode == 0, clean.stderr
        clean_stats = stub.stats()
        stub.reset()
        cmd = [sys.executable, "-m", "factory", *args, "--executor", "ray", "--workers", str(WORKERS)]
        proc = subprocess.Popen(cmd, env=_env(stub, home), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while stub.stats()["requests"] < N // 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        time.sleep(2)  # Ray's reaper stops the workers of a dead driver
        before = stub.stats()
        assert N // 2 <= before["requests"] < N, "killed too late to test resume"
        assert Store(home).versions("answers") == []  # no half version
        shards = next((home / "shards" / "answers").iterdir())
        assert any(shards.glob("job-*.done"))  # some shards were complete at the kill
        with sqlite3.connect(home / "cache" / "llm.sqlite") as db:
            finished = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        time.sleep(1)
        in_flight_answers = stub.stats()["requests"] - before["requests"]  # workers still draining, if any
        rerun = subprocess.run(cmd, env=_env(stub, home), cwd=REPO, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        after = stub.stats()

    # nothing with a stored answer was asked again; a request re-sent was one in flight at the kill
    assert after["requests"] - before["requests"] - in_flight_answers == N - finished
    assert after["repeated_ok"] - clean_stats["repeated_ok"] <= WORKERS * CONCURRENCY
    version, local = Store(home).resolve("answers"), Store(local_home).resolve("answers")
    assert version.version == local.version  # same version id as the local executor
    assert version.read().to_dicts() == local.read().to_dicts()
    assert version.manifest.counters == {"kept": N, "dropped": 0, "failed": 0}
    assert version.manifest.cost.requests == N
    assert not shards.exists()


def test_ray_judge_equals_local(tmp_path):
    """A judge's rows, counters and manifest statistics (merged from the workers' copies) equal the local run's."""
    import json
    import re
    import shutil

    def reply(call: dict) -> str:
        topic = int(re.search(r"topic (\d+)", call["prompt"]).group(1))
        if call["schema"] is not None:
            return json.dumps({"rationale": f"topic {topic}", "score": topic % 10 + 1})
        if "topic" in call["prompt"] and "Rating" in call["prompt"]:
            return f"Fine.\nRating: [[{topic % 10 + 1}]]"
        return f"Here is a fact about topic {topic}."

    home = tmp_path / "local"
    rows = [{"id": f"r{i}", "instruction": f"Say something about topic {i}."} for i in range(20)]
    assert run_factory("datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--name", "p",
                       home=home).returncode == 0
    results = {}
    with StubLLMServer(responder=reply) as stub:
        gen = run_factory("generate", "p", "--llm", "openai:stub-model", "--name", "answers", home=home,
                          env=_env(stub, home))
        assert gen.returncode == 0, gen.stderr
        shutil.copytree(home, tmp_path / "ray")
        for ex in ("local", "ray"):
            stub.reset()
            h = tmp_path / ex
            r = run_factory("judge", "answers", "--with", "openai:stub-model", "--min-score", "5", "--executor", ex,
                            "--shard-rows", "5", home=h, env=_env(stub, h), timeout=300)
            assert r.returncode == 0, r.stderr
            results[ex] = (Store(h).resolve("answers-judged"), stub.stats()["requests"])
    (local, sent_l), (ray_v, sent_r) = results["local"], results["ray"]
    assert sent_l == sent_r == 20
    assert ray_v.version == local.version
    assert ray_v.read().to_dicts() == local.read().to_dicts() and 0 < local.read().height < 20  # filtered
    assert ray_v.manifest.counters == local.manifest.counters
    assert ray_v.manifest.model_dump()["judge"] == local.manifest.model_dump()["judge"]
