"""`--executor ray` against `--executor local` on one machine, in the same run: what Ray costs and what it buys here.

1. `factory generate` (a real CLI process each) of N rows against the OpenAI-compatible stub in its own process
   (`--latency` s a call): local (`--concurrency C`) and Ray with 2 workers (`--concurrency C/2` each: the same
   calls in flight), and Ray's start and stop alone (`ray.init` + `ray.shutdown`, 2 CPUs).
2. Near dedup (MinHash LSH, 128 permutations) of the synthetic rows of benchmarks/dedup_near.py: the local numpy
   path and the Ray Data path (signatures per block, band-key shuffle; factory/pipeline/ray_dedup.py), same mask.

    python benchmarks/ray_executor.py [--rows 2000] [--latency 0.2] [--concurrency 64] [--dedup-rows 1000000]
                                      [--only generate|dedup]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl
from _results import record
from dedup_near import synthetic

from factory.pipeline.minhash import near_duplicates
from factory.testing.llm_stub import remote_reset, remote_stats, start_stub_process, stop_stub_process


def factory(home: Path, *args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "factory", "--home", str(home), "-q", *args], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    return time.perf_counter() - start


def ray_start_stop() -> float:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.shutdown()
    return time.perf_counter() - start


def generation(args: argparse.Namespace) -> str:
    proc, base = start_stub_process(latency=args.latency)
    try:
        env = {**os.environ, "OPENAI_BASE_URL": f"{base}/v1", "OPENAI_API_KEY": "bench", "OMP_NUM_THREADS": "1"}
        times = {}
        with tempfile.TemporaryDirectory() as tmp:
            tag = uuid.uuid4().hex[:8]  # fresh prompts: nothing from the cache
            rows = [{"id": f"r{i}", "instruction": f"[{tag}] one line about row {i}"} for i in range(args.rows)]
            src = Path(tmp) / "p.jsonl"
            src.write_text("\n".join(json.dumps(r) for r in rows))
            shard = str(max(1, args.rows // 16))
            for label, extra in (("local", ["--concurrency", str(args.concurrency)]),
                                 ("ray, 2 workers", ["--executor", "ray", "--workers", "2", "--concurrency",
                                                     str(args.concurrency // 2)])):
                home = Path(tmp) / label.replace(" ", "").replace(",", "")
                factory(home, "datasets", "import", str(src), "--name", "p", env=env)
                remote_reset(base)
                times[label] = factory(home, "generate", "p", "--llm", "openai:stub-model", "--max-tokens", "16",
                                       "--shard-rows", shard, *extra, env=env)
                assert remote_stats(base)["requests"] == args.rows
        ray_alone = ray_start_stop()
    finally:
        stop_stub_process(proc)
    local, on_ray = times["local"], times["ray, 2 workers"]
    ideal = args.rows * args.latency / args.concurrency
    return f"""
`factory generate`, {args.rows:,} rows, stub latency {args.latency} s, {args.concurrency} calls in flight in all
(local: `--concurrency {args.concurrency}`; Ray: 2 workers x `--concurrency {args.concurrency // 2}`), 16 shards,
each a fresh CLI process (start-up included). Ideal wall (rows x latency / in flight): {ideal:.1f} s.

| executor | wall | rows/s |
|---|---|---|
| local | {local:.1f} s | {args.rows / local:,.0f} |
| ray, 2 workers | {on_ray:.1f} s | {args.rows / on_ray:,.0f} |
| Ray start + stop alone (`ray.init` 2 CPUs, `ray.shutdown`) | {ray_alone:.1f} s | |

Ray / local rows/s: **{local / on_ray:.2f}x**. On one machine Ray buys nothing for an API-bound stage (one
asyncio process already keeps {args.concurrency} calls in flight); its cost is the fixed start-up (Ray itself, then the
actors importing factory and opening their clients) and the shard files. It pays off across machines, or with
one vLLM engine per GPU."""


def dedup(args: argparse.Namespace) -> str:
    import ray

    from factory.pipeline.ray_dedup import near_duplicates_ray

    texts, _ = synthetic(args.dedup_rows)
    start = time.perf_counter()
    local = near_duplicates(pl.Series(texts))
    t_local = time.perf_counter() - start
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_init = time.perf_counter() - start
    try:
        start = time.perf_counter()
        on_ray = near_duplicates_ray(texts, blocks=8, parts=8)
        t_ray = time.perf_counter() - start
    finally:
        ray.shutdown()
    same = bool(np.array_equal(local, on_ray))
    n = args.dedup_rows
    return f"""
Near dedup, {n:,} synthetic rows (benchmarks/dedup_near.py's; 2 % planted near copies), 8 blocks, 8 shuffle
partitions, 2 CPUs. Same drop mask: **{same}** ({int(local.sum()):,} rows dropped).

| path | wall | rows/s |
|---|---|---|
| local (polars + numpy, one process) | {t_local:.1f} s | {n / t_local:,.0f} |
| Ray Data (map_batches signatures, groupby on band keys), Ray already started | {t_ray:.1f} s | {n / t_ray:,.0f} |
| Ray start (`ray.init`) | {t_init:.1f} s | |

Ray / local wall: **{t_ray / t_local:.1f}x**. The local path is vectorised and already uses the cores through
numpy and polars; on one 2-core machine Ray adds serialisation of every block and band entry and a shuffle of
rows x bands entries, so it is slower here. It is the way past one machine's memory, not a speed-up on one."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--dedup-rows", type=int, default=1_000_000)
    ap.add_argument("--only", choices=["generate", "dedup"])
    args = ap.parse_args()
    for part, run in (("generate", generation), ("dedup", dedup)):
        if args.only in (None, part):
            body = run(args)
            note = (f"Machine load (1-min average) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: "
                    "the box was shared with other jobs, so absolute times are inflated; both sides ran in this run.")
            record(f"Ray executor vs local on one machine: {part} (benchmarks/ray_executor.py)", f"{body}\n\n{note}")


if __name__ == "__main__":
    main()
