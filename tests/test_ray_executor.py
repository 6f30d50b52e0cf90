"""`--executor ray` (local Ray, 2 CPUs) against the OpenAI-compatible stub: the same version id and rows as the local
executor; a driver killed with SIGKILL resumes from its shards without re-sending a finished request; `--rpm` and
`--budget` hold for the whole run across 2 workers. No Ray process outlives its test (`no_ray_left`)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import REPO, run_factory, write_jsonl

pytest.importorskip("ray.data", reason='the Ray executor needs the scale extra: pip install "dataset-factory[scale]"')

pytestmark = pytest.mark.slow  # every run starts a local Ray (seconds)


def _ray_processes(tmp_path) -> list[int]:
    """Processes started for this test's runs (they inherit its FACTORY_HOME): a driver's own local Ray among them."""
    return _marked(f"FACTORY_HOME={tmp_path}".encode())


def _marked(mark: bytes) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if any(v.startswith(mark) for v in (proc / "environ").read_bytes().split(b"\0")):
                    found.append(int(proc.name))
            except OSError:  # gone already, or not ours to read
                pass
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray cluster (`ray start --head`, 2 CPUs) that most runs join with `--ray-address`, and the stub its
    workers talk to: one Ray start instead of one per run. A cluster's workers read the provider's settings from
    their node's environment (not the driver's), so the stub's address is set there. The cluster's processes carry a
    mark in their environment; they are ended by id at the end."""
    mark = f"FACTORY_TEST_RAY={uuid.uuid4().hex}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tmp_path_factory.mktemp("ray")
    stub = StubLLMServer().start()
    key, value = mark.split("=")
    env = {**os.environ, key: value, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "test-key"}
    started = subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
                              "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                              "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp)],
                             env=env, capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        yield f"127.0.0.1:{port}", stub
    finally:
        stub.stop()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _marked(mark.encode()):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while _marked(mark.encode()) and time.monotonic() < deadline:
                time.sleep(0.2)
        assert not _marked(mark.encode()), "the test cluster's processes did not stop"


@pytest.fixture(autouse=True)
def no_ray_left(tmp_path):
    """A local Ray stopped by its driver (or reaped after a SIGKILL) must be gone before the next test starts."""
    yield
    deadline = time.monotonic() + 60
    while (left := _ray_processes(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"Ray processes outlived the test: {left}"


def _env(stub, home):
    return {**os.environ, "FACTORY_HOME": str(home), "OPENAI_BASE_URL": stub.openai_base_url,
            "OPENAI_API_KEY": "test-key", "RAY_AUTH_MODE": "token"}  # the token: ~/.ray/auth_token, made if missing


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


def test_ray_generate_killed_driver_resumes(tmp_path, cluster):
    rows = [{"id": f"r{i}", "instruction": f"Describe llama number {i} in one line."} for i in range(N)]
    prompts = write_jsonl(tmp_path / "p.jsonl", rows)
    home, local_home = tmp_path / "home", tmp_path / "local"
    for h in (home, local_home):
        assert run_factory("datasets", "import", str(prompts), "--name", "prompts", home=h).returncode == 0
    args = ["-q", "generate", "prompts", "--llm", "openai:stub-model", "--concurrency", str(CONCURRENCY),
            "--name", "answers", "--shard-rows", str(SHARD)]
    address, stub = cluster
    stub.configure(latency_s=0.05)
    stub.reset()
    clean = run_factory(*args, home=local_home, env=_env(stub, local_home), timeout=300)
    assert clean.returncode == 0, clean.stderr
    clean_stats = stub.stats()
    stub.reset()
    cmd = [sys.executable, "-m", "factory", *args, "--executor", "ray", "--workers", str(WORKERS),
           "--ray-address", address]
    proc = subprocess.Popen(cmd, env=_env(stub, home), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while stub.stats()["requests"] < N // 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    time.sleep(2)  # the cluster ends the actors of a dead driver
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


def test_ray_judge_equals_local(tmp_path, cluster):
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
    address, stub = cluster
    stub.configure(latency_s=0.0)
    stub.responder = reply
    try:
        gen = run_factory("generate", "p", "--llm", "openai:stub-model", "--name", "answers", home=home,
                          env=_env(stub, home))
        assert gen.returncode == 0, gen.stderr
        shutil.copytree(home, tmp_path / "ray")
        for ex in ("local", "ray"):
            stub.reset()
            h = tmp_path / ex
            r = run_factory("judge", "answers", "--with", "openai:stub-model", "--min-score", "5", "--executor", ex,
                            "--shard-rows", "5", *(["--ray-address", address] if ex == "ray" else []),
                            home=h, env=_env(stub, h), timeout=300)
            assert r.returncode == 0, r.stderr
            results[ex] = (Store(h).resolve("answers-judged"), stub.stats()["requests"])
    finally:
        stub.responder = None
    (local, sent_l), (ray_v, sent_r) = results["local"], results["ray"]
    assert sent_l == sent_r == 20
    assert ray_v.version == local.version
    assert ray_v.read().to_dicts() == local.read().to_dicts() and 0 < local.read().height < 20  # filtered
    assert ray_v.manifest.counters == local.manifest.counters
    assert ray_v.manifest.model_dump()["judge"] == local.manifest.model_dump()["judge"]


def test_ray_rpm_and_budget_hold_across_workers(tmp_path, cluster):
    """2 workers share one `--rpm` schedule and one `--budget` ledger: the stub sees the run-wide rate, never more,
    and the whole run's spend (the stub's own count) stays under the cap. Per worker, both would double."""
    # 20 requests/s; an answer costs ~0.013 USD and reserves ~0.08 (its worst case) while it waits: the cap stops
    # the run after some 60-90 answers (~4 s), well before the 200 rows are done
    rpm, budget, price = 1200, 1.5, 1000.0
    home = tmp_path / "home"
    home.mkdir()
    (home / "factory-store.json").write_text("{}")
    (home / "config.yaml").write_text(f"prices:\n  stub-model: {{input: {price}, output: {price}}}\n")
    rows = [{"id": f"r{i}", "instruction": f"Name a colour, number {i}."} for i in range(200)]
    assert run_factory("datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", rows)), "--name", "p",
                       home=home).returncode == 0
    address, stub = cluster
    stub.configure(latency_s=0.02, price_input=price, price_output=price)
    stub.reset()
    r = run_factory("generate", "p", "--llm", "openai:stub-model", "--executor", "ray", "--workers", "2",
                    "--shard-rows", "10", "--concurrency", "2", "--max-tokens", "16", "--rpm", str(rpm),
                    "--budget", str(budget), "--ray-address", address, home=home, env=_env(stub, home),
                    timeout=300)
    s = stub.stats()
    assert r.returncode == 1, r.stderr
    assert "budget of $1.5 reached" in r.stderr and "spent by all workers" in r.stderr and "Traceback" not in r.stderr
    assert Store(home).versions("p-answers") == []
    assert 0.4 * budget < s["usd"] <= budget + 1e-9  # the cap was reached, for the whole run
    stamps = sorted(s["arrivals"])
    assert len(stamps) >= 30  # enough calls to tell one schedule from two
    rate = rpm / 60
    # the shared bucket starts with 1 s worth and refills at `rate`: by the k-th call at most rate * (1 + elapsed);
    # elapsed counts from the first call's arrival, which a fresh client's connection setup delays (+0.5 s, +2)
    over = [(k, t - stamps[0]) for k, t in enumerate(stamps, 1) if k > rate * (1.5 + t - stamps[0]) + 2]
    assert not over, f"calls faster than --rpm {rpm} across workers: {over[:5]}"
    later = [count for second, count in s["per_second"].items() if second != "0"]  # after the first second's burst
    assert later and max(later) <= 1.5 * rate + 2  # two workers on their own buckets would send 2 x rate


def test_ray_self_play_and_self_distill_equal_local(tmp_path, cluster):
    """The self-play (SPIN) and self-distill schemes go through `factory build`, so `--executor ray` runs them too:
    same version ids, rows and counters as the local executor, each request sent once."""
    address, stub = cluster
    stub.configure(latency_s=0.0)
    rows = [{"id": f"s{i}", "instruction": f"What is {i} plus {i}?", "response": f"It is {2 * i}."} for i in range(12)]
    sft = write_jsonl(tmp_path / "sft.jsonl", rows)
    results = {}
    for ex in ("local", "ray"):
        home = tmp_path / ex
        assert run_factory("datasets", "import", str(sft), "--name", "sft", home=home).returncode == 0
        for scheme in ("self-play", "self-distill"):
            stub.reset()
            r = run_factory("build", scheme, "--from", "sft", "--llm", "openai:stub-model", "--executor", ex,
                            "--shard-rows", "4", *(["--ray-address", address] if ex == "ray" else []),
                            home=home, env=_env(stub, home), timeout=300)
            assert r.returncode == 0, r.stderr
            results[ex, scheme] = (Store(home).resolve(r.stdout.strip()), stub.stats()["requests"])
    for scheme in ("self-play", "self-distill"):
        (local, sent_l), (ray_v, sent_r) = results["local", scheme], results["ray", scheme]
        assert sent_l == sent_r == 12
        assert ray_v.version == local.version
        assert ray_v.read().to_dicts() == local.read().to_dicts() and local.read().height > 0
        assert ray_v.manifest.counters == local.manifest.counters


def test_near_dedup_on_ray_equals_local(tmp_path, cluster):
    """`factory dedup --near --executor ray`: MinHash signatures per block (map_batches), LSH buckets by a shuffle on
    band keys (groupby); the same version id and rows as the local path."""
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(3000)]
    texts = []
    for i in range(3000):
        if i % 7 == 3:  # a near copy of an earlier row: its last word changed (Jaccard of 3-shingles ~0.9)
            words = texts[rng.randrange(len(texts))].split()[:-1] + ["changed"]
        else:
            words = rng.choices(vocab, k=40)
        texts.append(" ".join(words))
    rows = write_jsonl(tmp_path / "t.jsonl", [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)])
    out = {}
    for ex in ("local", "ray"):
        home = tmp_path / ex
        assert run_factory("datasets", "import", str(rows), "--name", "t", home=home).returncode == 0
        r = run_factory("dedup", "t", "--near", "--executor", ex, "--shard-rows", "800",
                        *(["--ray-address", cluster[0]] if ex == "ray" else []), home=home,
                        env={**os.environ, "FACTORY_HOME": str(home), "RAY_AUTH_MODE": "token"}, timeout=300)
        assert r.returncode == 0, r.stderr
        out[ex] = Store(home).resolve(r.stdout.strip())
    local, on_ray = out["local"], out["ray"]
    assert local.manifest.counters["near_duplicates"] >= 300  # the planted copies are found
    assert on_ray.version == local.version
    assert on_ray.manifest.counters == local.manifest.counters
    assert on_ray.read().to_dicts() == local.read().to_dicts()
