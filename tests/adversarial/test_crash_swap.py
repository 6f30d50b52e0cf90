"""A kill between the two renames of a replacing commit loses nothing; what dead writers left is swept.

The replacing commits are the store's (a rerun that completes the failed rows of a version: same id, swapped
in) and `factory train ... --overwrite`. Each runs in a real subprocess that `FACTORY_CRASH_AT=swap` kills with
SIGKILL right after the first rename, exactly where a `kill -9` would hurt most; the next command (a reader or
a writer) must finish the swap, not delete the half it finds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import REPO, run_factory, write_jsonl

ROWS = [{"id": f"r{i}", "instruction": f"Question {i}?"} for i in range(4)]


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


def dead_pid() -> int:
    """The pid of a process that has exited (what a killed writer's leftovers carry)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def crash_state(tmp_path_factory):
    """A version with a failed row, then a rerun that completes it, killed between its two renames."""
    tmp_path = tmp_path_factory.mktemp("crash")
    home = tmp_path / "home"
    assert invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", ROWS)), "--name", "p"
                  ).exit_code == 0
    # the first attempt of the request for row 2 is refused (400: not retried), later ones are answered
    with StubLLMServer(script=["400"], fault_match="Question 2?") as stub:
        env = {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "sk-crash-test"}
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            first = invoke(home, "generate", "p", "--llm", "openai:stub-model")
        assert first.exit_code == 0, first.output
        old = Store(home).resolve("p-answers")
        assert old.manifest.counters["failed"] == 1
        killed = run_factory("generate", "p", "--llm", "openai:stub-model", home=home,
                             env={**env, "FACTORY_CRASH_AT": "swap"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    d = old.path.parent
    leftovers = sorted(p.name for p in d.iterdir() if p.name.startswith("."))
    # the crash state: the version's directory is gone, its old content aside, the new one beside it
    assert not old.path.exists()
    assert f".{old.version}.swap" in leftovers
    assert any(n.startswith(f".{old.version}.old-") for n in leftovers)
    assert any(n.startswith(f".tmp-{old.version}-") for n in leftovers)
    return home, old.version


@pytest.fixture
def crashed(crash_state, tmp_path):
    """A copy of the crash state for one test."""
    home, version = crash_state
    copy = tmp_path / "home"
    shutil.copytree(home, copy, symlinks=True)
    return copy, version


@pytest.mark.parametrize("who", ["reader", "writer"])
def test_the_next_command_finishes_a_store_swap_cut_by_a_kill(crashed, tmp_path, who: str) -> None:
    home, old = crashed
    if who == "reader":
        result = invoke(home, "datasets", "show", f"p-answers@{old}")
    else:  # any write to the store: here, an unrelated import
        write_jsonl(tmp_path / "q.jsonl", [{"instruction": "x"}])
        result = invoke(home, "datasets", "import", str(tmp_path / "q.jsonl"), "--name", "q")
    assert result.exit_code == 0, result.output
    version = Store(home).resolve("p-answers")
    assert version.version == old and version.manifest.counters["failed"] == 0  # the rerun's rows
    assert version.read()["error"].null_count() == len(ROWS)
    assert [p.name for p in version.path.parent.iterdir() if p.name.startswith(".")] == []


def test_with_the_new_half_gone_the_old_version_is_put_back(crashed) -> None:
    home, old = crashed
    for tmp in (home / "datasets" / "p-answers").glob(f".tmp-{old}-*"):
        shutil.rmtree(tmp)
    version = Store(home).resolve("p-answers")
    assert version.version == old and version.manifest.counters["failed"] == 1
    assert version.read().height == len(ROWS)


def test_stale_temp_dirs_of_dead_writers_are_swept_on_any_write(tmp_path) -> None:
    home = tmp_path / "home"
    assert invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", ROWS)), "--name", "p"
                  ).exit_code == 0
    d = Store(home).resolve("p").path.parent
    dead, alive = d / f".tmp-abc-{dead_pid()}", d / f".tmp-abd-{os.getppid()}"
    trash = d / f".trash-abe-{dead_pid()}"  # a version `rm` had taken out when it was killed
    for leftover in (dead, alive, trash):
        (leftover / "data").mkdir(parents=True)
        (leftover / "data" / "part-00000.parquet").write_bytes(b"half a shard")
    write_jsonl(tmp_path / "q.jsonl", [{"instruction": "x"}])
    assert invoke(home, "datasets", "import", str(tmp_path / "q.jsonl"), "--name", "q").exit_code == 0
    assert not dead.exists() and not trash.exists()
    assert alive.is_dir()  # a writer that still runs keeps its temp directory
    assert Store(home).resolve("p").read().height == len(ROWS)


@pytest.mark.slow
def test_train_overwrite_killed_between_its_renames_keeps_the_new_checkpoint(tmp_path, tiny_dir) -> None:
    from tests.test_train_sft import FAST, chat_rows, import_rows

    home = tmp_path / "home"
    import_rows(home, tmp_path, "chat", chat_rows(8))
    out = tmp_path / "ckpt"
    base = ["train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(out), *FAST]
    first = invoke(home, *base)
    assert first.exit_code == 0, first.output
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FACTORY_CRASH_AT": "swap"}
    killed = subprocess.run([sys.executable, "-m", "factory", "--home", str(home), "-q", *base, "--overwrite",
                             "--set", "training.learning_rate=3e-3"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = out.with_name("ckpt.partial")
    assert not out.exists() and partial.is_dir() and out.with_name(".ckpt.swap").is_file()
    assert list(tmp_path.glob(".ckpt.old-*"))

    again = invoke(home, *base)  # the next run on --out: the new checkpoint is in place, so it is "not empty"
    assert again.exit_code == 2 and "not empty" in again.output, again.output
    args = json.loads((out / "training_args.json").read_text())
    assert args["learning_rate"] == pytest.approx(3e-3)  # the --overwrite run's checkpoint, not the first one
    assert not partial.exists() and not list(tmp_path.glob(".ckpt.*"))
