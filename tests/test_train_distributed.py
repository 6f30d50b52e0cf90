"""`factory train` under `accelerate launch` with the shipped `recipes/accelerate/ddp.yaml`, two CPU processes (gloo).

Both processes train (each takes half of every global batch) and end each stage with the same weights, changed by
training (a digest of each rank's model around `Trainer.train`, written by tests/ddp_probe.py); only the main one
writes factory.json, merges the sequential stages and renames the output directory, and the other waits for it at
the barriers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.test_train_sft import chat_rows, check_record, generates, import_rows, load_checkpoint


@pytest.mark.slow
def test_sequential_sft_with_two_processes(tmp_path, tiny_dir):
    home, probes = tmp_path / "home", tmp_path / "probes"
    probes.mkdir()
    first = import_rows(home, tmp_path, "a", chat_rows(12))
    second = import_rows(home, tmp_path, "b", chat_rows(12, topic="times"))
    out = tmp_path / "ddp"
    cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file", "recipes/accelerate/ddp.yaml",
           "--num_processes", "2", "--mixed_precision", "no", "tests/ddp_probe.py",
           "--home", str(home), "-q", "train", "sft", "--model", str(tiny_dir), "--data", "a,b", "--out", str(out),
           "--set", "training.max_steps=3", "--set", "training.per_device_train_batch_size=2",
           "--set", "training.learning_rate=1e-2", "--set", "training.save_strategy=no"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "DDP_PROBE_DIR": str(probes)})
    assert r.returncode == 0, r.stderr[-3000:]
    for stage in (1, 2):
        ranks = [json.loads((probes / f"rank-{rank}-{stage}.json").read_text()) for rank in (0, 1)]
        assert [p["world"] for p in ranks] == ["2", "2"]
        assert ranks[0]["before"] == ranks[1]["before"]
        assert ranks[0]["after"] != ranks[0]["before"]  # training changed the weights
        assert ranks[0]["after"] == ranks[1]["after"]  # and DDP kept the two ranks identical
    assert r.stdout.strip() == str(out)  # printed once, by the main process
    doc = check_record(out, "sft-sequential", tiny_dir, [first, second], adapter=False)
    # 3 steps x 2 rows x 2 processes = the 12 rows once; one process alone would have seen half of them
    assert [s["metrics"]["epoch"] for s in doc["stages"]] == [1.0, 1.0]
    assert json.loads((out / "stage-2-b" / "factory.json").read_text())["datasets"] == doc["datasets"]
    model, tok = load_checkpoint(out)
    generates(model, tok)

