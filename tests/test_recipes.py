"""`factory run`: recipes validated before anything runs, run end to end, rerun for free, resumed after SIGKILL.

The shipped quickstart recipe runs with the OpenAI-compatible stub as its teacher and judge (a real HTTP server
through the real SDK) and a tiny Llama as the base model, so the whole chain takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import REPO, run_factory

LIST = "\n".join(f"{i}. Explain how {w} works, with one everyday example." for i, w in
                 enumerate(["a bicycle gear", "a kettle", "compound interest", "a vaccine", "a rainbow"], 1))


def responder(req: dict) -> str:
    if "rate the response" in f"{req.get('system') or ''} {req['prompt']} {json.dumps(req.get('messages'))}":
        return json.dumps({"rationale": "Clear and correct.", "score": 8})
    if "new instructions" in req["prompt"]:
        return LIST
    return "A careful answer: first the idea, then a worked example, then a check. " + req["prompt"][:40]


@pytest.fixture
def stub():
    with StubLLMServer(responder=responder) as server:
        yield server


def quickstart_args(tiny_dir: Path) -> list[str]:
    return ["--set", "teacher=openai:stub-model", "--set", f"base={tiny_dir}", "--set", "steps=2",
            "--set", "n=6"]


def env_for(stub) -> dict[str, str]:
    return {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "test-key", "HF_HUB_OFFLINE": "1"}


def stage_table(run_json: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads(run_json.read_text())["stages"]}


@pytest.mark.slow
def test_quickstart_recipe_runs_then_reruns_with_every_stage_skipped(tmp_path, stub, tiny_dir):
    home = tmp_path / "home"
    r = run_factory("run", "quickstart", *quickstart_args(tiny_dir), home=home, env=env_for(stub), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "kept/dropped/failed" in r.stdout and "total: $" in r.stdout
    stages = stage_table(home / "runs" / "quickstart" / "run.json")
    assert [s["status"] for s in stages.values()] == ["done"] * 6
    assert stages["dolly-seed"]["rows_out"] == 64
    built = Store(home).resolve(stages["lamini"]["artefact"])
    assert built.manifest.rows == stages["lamini"]["rows_out"] > 0
    judged = Store(home).resolve(stages["lamini-judged"]["artefact"]).read()
    assert judged["judge_score"].to_list() == [8.0] * judged.height  # every row scored
    ckpt = Path(stages["sft"]["artefact"])
    record = json.loads((ckpt / "factory.json").read_text())
    assert record["datasets"] == [{"name": "lamini-judged", "version": judged_version(stages)}]
    assert stages["publish"]["artefact"].endswith("/quickstart/smollm2-lamini-lora")
    sent = stub.stats()["requests"]

    again = run_factory("run", "quickstart", *quickstart_args(tiny_dir), home=home, env=env_for(stub), timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = stage_table(home / "runs" / "quickstart" / "run.json")
    assert [s["status"] for s in rerun.values()] == ["skipped"] * 6
    assert {k: s["artefact"] for k, s in rerun.items()} == {k: s["artefact"] for k, s in stages.items()}
    assert stub.stats()["requests"] == sent  # nothing asked again

    # a changed variable re-runs exactly the stages downstream of it
    more = run_factory("run", "quickstart", *quickstart_args(tiny_dir), "--set", "steps=3", "--until", "sft",
                       home=home, env=env_for(stub), timeout=300)
    assert more.returncode == 0, more.stderr[-2000:]
    changed = stage_table(home / "runs" / "quickstart" / "run.json")
    assert [changed[n]["status"] for n in ("dolly-seed", "lamini", "lamini-dedup", "lamini-judged")] == \
        ["skipped"] * 4
    assert changed["sft"]["status"] == "done" and changed["publish"]["status"] == "not run"


def judged_version(stages: dict) -> str:
    return stages["lamini-judged"]["artefact"].split("@")[1]


@pytest.mark.slow
def test_sigkill_mid_stage_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_dir):
    """Killed while the teacher is answering: the rerun skips what finished, re-asks only what was missing."""
    until = ["--until", "lamini-judged"]
    with StubLLMServer(responder=responder) as stub:
        stub.configure(latency_s=0.4)
        home = tmp_path / "killed"
        env = {**os.environ, **env_for(stub), "FACTORY_HOME": str(home)}
        args = [sys.executable, "-m", "factory", "run", "quickstart", *quickstart_args(tiny_dir),
                "--set", "lamini.concurrency=1", *until]
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cache = home / "cache" / "llm.sqlite"
        deadline = time.monotonic() + 600  # a loaded CI box imports torch slowly; ends once it holds
        while time.monotonic() < deadline and _cached(cache) < 1:
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert _cached(cache) >= 1, "the run was killed before any answer was cached"
        state = json.loads((home / "runs" / "quickstart" / "state.json").read_text())
        assert set(state) == {"dolly-seed"}  # killed inside `lamini`
        r = run_factory("run", "quickstart", *quickstart_args(tiny_dir), "--set", "lamini.concurrency=1", *until,
                        home=home, env=env_for(stub), timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        killed_calls = stub.stats()
    killed = stage_table(home / "runs" / "quickstart" / "run.json")
    assert killed["dolly-seed"]["status"] == "skipped" and killed["lamini"]["status"] == "done"

    with StubLLMServer(responder=responder) as stub:
        clean = tmp_path / "clean"
        c = run_factory("run", "quickstart", *quickstart_args(tiny_dir), "--set", "lamini.concurrency=1", *until,
                        home=clean, env=env_for(stub), timeout=300)
        assert c.returncode == 0, c.stderr[-2000:]
        clean_calls = stub.stats()
    fresh = stage_table(clean / "runs" / "quickstart" / "run.json")
    assert {k: s["artefact"] for k, s in killed.items()} == {k: s["artefact"] for k, s in fresh.items()}
    for name in ("lamini", "lamini-dedup", "lamini-judged"):
        a = Store(home).resolve(killed[name]["artefact"]).read()
        b = Store(clean).resolve(fresh[name]["artefact"]).read()
        assert a.equals(b), name
    # nothing answered before the kill was paid for again: at most the one call in flight at the kill
    assert killed_calls["repeated_ok"] == clean_calls["repeated_ok"]
    assert 0 <= killed_calls["requests"] - clean_calls["requests"] <= 1


def _cached(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            table = db.execute("select name from sqlite_master where type='table'").fetchone()
            return db.execute(f"select count(*) from {table[0]}").fetchone()[0] if table else 0
    except sqlite3.Error:
        return 0


def write_recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


GOOD = """
name: t
vars: {model: local}
stages:
  - {name: seeds, kind: import, source: "seeds:dolly"}
  - {name: judged, kind: judge, from: seeds, with: "${model}", min_score: 7}
"""


@pytest.mark.parametrize("edit,message", [
    (("min_score: 7", "min_scor: 7"), "stage 'judged': unknown key 'min_scor' (did you mean min_score?)"),
    (("from: seeds", "from: sedes"), "stage 'judged': no stage named 'sedes' (did you mean 'seeds'?)"),
    (("kind: judge", "kind: jugde"), "unknown kind 'jugde' (did you mean 'judge'?)"),
    (("${model}", "${modle}"), "${modle} names no stage or variable (did you mean 'model'?)"),
    (("min_score: 7", "min_score: lots"), "stage 'judged': Invalid value for '--min-score'"),
    (("source: \"seeds:dolly\"", "source: \"seeds:dolly\", from: judged"), "stages form a cycle"),
    (("name: judged", "name: seeds"), "two stages named 'seeds'"),
    (("name: judged", "name: Judged!"), "stage 'Judged!': name"),
])
def test_a_bad_recipe_fails_before_anything_runs(tmp_path, edit, message):
    path = write_recipe(tmp_path, GOOD.replace(*edit))
    home = tmp_path / "home"
    r = run_factory("run", str(path), home=home)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (home / "datasets").exists()  # nothing ran


def test_set_names_a_variable_or_a_stage_key(tmp_path):
    path = write_recipe(tmp_path, GOOD)
    home = tmp_path / "home"
    r = run_factory("run", str(path), "--set", "modle=x", home=home)
    assert r.returncode == 2 and "no variable 'modle' (did you mean 'model'?)" in r.stderr
    r = run_factory("run", str(path), "--set", "judgd.min_score=3", home=home)
    assert r.returncode == 2 and "no stage named 'judgd'" in r.stderr
    r = run_factory("run", str(path), "--set", "judged.min_score=3", "--set", "model=openai:gpt-4o", "--dry-run",
                    home=home)
    assert r.returncode == 0, r.stderr
    assert "--with openai:gpt-4o --min-score 3" in r.stdout


@pytest.mark.parametrize("recipe", ["quickstart", "openbezoar", "spin", "self-distill"])
def test_dry_run_of_shipped_recipes_is_offline_and_keyless(tmp_path, recipe):
    home = tmp_path / "home"
    env = {k: "" for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN")}
    r = run_factory("run", recipe, "--dry-run", home=home, env={**env, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    assert "all valid" in r.stdout and "cost ceiling: ≤ $" in r.stdout
    assert not (home / "datasets").exists()
    if recipe == "openbezoar":
        # the paper's chain, each LLM stage with a ceiling, the sequential SFT in the released order
        for stage in ("lamini", "orca", "evol-instruct", "lamini-judged", "sft-lamini-orca-evol", "hh-sft", "dpo",
                      "lm-eval", "mt-bench", "publish"):
            assert re.search(rf"^{re.escape(stage)}\s", r.stdout, re.M), stage
        ceiling = float(re.search(r"cost ceiling: ≤ \$([0-9.]+) online", r.stdout).group(1))
        assert ceiling > 0
    if recipe == "spin":  # the paper's schedule reaches the trainer, which evaluates the SFT model and every iterate
        assert "--iterations 4" in r.stdout and "--set iterations.3.beta=5.0" in r.stdout
        assert "--set iterations.2.learning_rate=1e-07" in r.stdout
        assert "--mt-bench-judge gpt4 --lm-eval-tasks arc_challenge," in r.stdout
        # MT-Bench's 160 judged turns on 5 models (SFT + 4 iterates), at full price: train spin has no --batch
        assert re.search(r"^spin\s+train .*800 req to openai:gpt-4", r.stdout, re.M)
        online, batch = re.search(r"cost ceiling: ≤ \$([0-9.]+) online, ≤ \$([0-9.]+) with --batch", r.stdout).groups()
        assert float(online) == float(batch) > 0
    if recipe == "self-distill":
        assert "factory merge slerp <distill>/sft-self-distill-merged <distill>/sft-merged" in r.stdout


def test_shipped_recipes_are_in_the_package():
    from factory.cli.run import shipped_recipes

    assert {"quickstart", "openbezoar", "spin", "self-distill"} <= set(shipped_recipes())
    assert (REPO / "recipes" / "README.md").is_file()
