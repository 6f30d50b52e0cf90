"""`factory train --resume`: a run killed with SIGKILL mid-training continues from its last checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO
from tests.test_train_sft import (
    chat_rows,
    check_record,
    import_rows,
    invoke,
    one_thread,  # noqa: F401  (autouse fixture)
)


def _complete_checkpoints(partial):
    done = [p for p in partial.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(int(p.name.split("-")[1]) for p in done)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path, tiny_dir):
    home = tmp_path / "home"
    ref = import_rows(home, tmp_path, "chat", chat_rows(16))
    other = import_rows(home, tmp_path, "other", chat_rows(8, topic="minus"))
    out = tmp_path / "ckpt"
    partial = tmp_path / "ckpt.partial"
    run = ["train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(out),
           "--set", "training.per_device_train_batch_size=2", "--set", "training.save_steps=2",
           "--set", "training.logging_steps=1", "--set", "training.learning_rate=1e-2"]
    proc = subprocess.Popen([sys.executable, "-m", "factory", "--home", str(home), "-q", *run,
                             "--set", "training.max_steps=100000"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 600  # a loaded CI box imports torch slowly; ends once it holds
        while not _complete_checkpoints(partial) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert _complete_checkpoints(partial), proc.stderr.read().decode() if proc.poll() is not None else "timeout"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not out.exists() and (partial / "run.json").is_file()  # nothing half-written where --out points
    reached = _complete_checkpoints(partial)[-1]

    again = invoke(home, *run)
    assert again.exit_code == 2 and "pass --resume to continue it or --overwrite" in again.stderr
    wrong = invoke(home, *run[:5], "chat,other", *run[6:], "--resume")
    assert wrong.exit_code == 2 and "trains another model, dataset or method" in wrong.stderr

    target = reached + 3  # the step budget may change on resume; what is trained may not
    r = invoke(home, "-q", *run, "--set", f"training.max_steps={target}", "--resume")
    assert r.exit_code == 0, r.output
    doc = check_record(out, "sft", tiny_dir, [ref], adapter=True)
    assert doc["resumed_from"] == f"checkpoint-{reached}" and doc["metrics"]["steps"] == target
    assert not partial.exists() and other.startswith("other@")
    args = json.loads((out / "training_args.json").read_text())
    assert args["max_steps"] == target
