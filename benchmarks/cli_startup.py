"""How fast `factory --help` starts, against a bare `python -c pass` in the same run.

    python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _results import record


def timed(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    base = timed([sys.executable, "-c", "pass"], args.runs)
    help_ = timed([sys.executable, "-m", "factory", "--help"], args.runs)
    datasets_help = timed([sys.executable, "-m", "factory", "datasets", "--help"], args.runs)
    record("CLI start-up (benchmarks/cli_startup.py)", f"""
| command | median of {args.runs} | ratio to `python -c pass` |
|---|---|---|
| `python -c pass` (baseline) | {base * 1000:.0f} ms | 1.00 |
| `factory --help` | {help_ * 1000:.0f} ms | {help_ / base:.2f} |
| `factory datasets --help` | {datasets_help * 1000:.0f} ms | {datasets_help / base:.2f} |

Heavy libraries (polars, pydantic, torch, transformers, SDKs) are imported inside commands, not at start-up.
""")


if __name__ == "__main__":
    main()
