"""`kill -9` in the middle of a large import leaves no visible partial version, and the rerun succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest

from factory.store import Store
from tests.helpers import REPO

N = 1_000_000


@pytest.mark.slow
def test_kill_9_during_a_million_row_import(tmp_path):
    src = tmp_path / "big.jsonl"
    pl.DataFrame({
        "id": pl.int_range(N, eager=True).cast(pl.String),
        "instruction": [f"write item {i} of the list" for i in range(N)],
        "response": ["ok"] * N,
    }).write_ndjson(src)
    home = tmp_path / "home"
    env = {**os.environ, "FACTORY_HOME": str(home), "FACTORY_SHARD_MB": "2"}  # many shards: a wide window
    cmd = [sys.executable, "-m", "factory", "datasets", "import", str(src), "--name", "big"]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parent = home / "datasets" / "big"
    deadline = time.monotonic() + 120
    killed_mid_write = False
    while time.monotonic() < deadline and proc.poll() is None:
        tmp = list(parent.glob(".tmp-*/data/*.parquet")) if parent.is_dir() else []
        if tmp:
            proc.send_signal(signal.SIGKILL)
            killed_mid_write = True
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert killed_mid_write, "the import finished before it could be killed mid-write"
    assert proc.returncode == -signal.SIGKILL

    store = Store(home)
    assert store.versions("big") == []  # the half-written version is invisible
    listing = subprocess.run([sys.executable, "-m", "factory", "datasets", "list"], env=env, cwd=REPO,
                             capture_output=True, text=True)
    assert listing.returncode == 0 and "big" not in listing.stdout.replace("no datasets", "")

    rerun = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    version = Store(home).resolve("big")
    assert version.manifest.rows == N and len(version.files()) > 1
    assert version.scan().select(pl.len()).collect().item() == N
    assert not list(parent.glob(".tmp-*")), "the dead writer's temp dir is swept"
