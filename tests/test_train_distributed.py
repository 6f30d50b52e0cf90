"""`factory train` under torchrun with two CPU processes (gloo): the path `accelerate launch` takes on GPUs.

Both processes train (each takes half of every global batch), only the main one writes factory.json, merges
the sequential stages and renames the output directory, and the other waits for it at the barriers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.test_train_sft import chat_rows, check_record, generates, import_rows, load_checkpoint


@pytest.mark.slow
def test_sequential_sft_with_two_processes(tmp_path, tiny_dir):
    home = tmp_path / "home"
    first = import_rows(home, tmp_path, "a", chat_rows(12))
    second = import_rows(home, tmp_path, "b", chat_rows(12, topic="times"))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "factory", "--home", str(home), "-q", "train", "sft", "--model", str(tiny_dir), "--data", "a,b",
           "--out", str(out), "--set", "training.max_steps=3", "--set", "training.per_device_train_batch_size=2",
           "--set", "training.learning_rate=1e-2", "--set", "training.save_strategy=no"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == str(out)  # printed once, by the main process
    doc = check_record(out, "sft-sequential", tiny_dir, [first, second], adapter=False)
    # 3 steps x 2 rows x 2 processes = the 12 rows once; one process alone would have seen half of them
    assert [s["metrics"]["epoch"] for s in doc["stages"]] == [1.0, 1.0]
    assert json.loads((out / "stage-2-b" / "factory.json").read_text())["datasets"] == doc["datasets"]
    model, tok = load_checkpoint(out)
    generates(model, tok)
