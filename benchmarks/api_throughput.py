"""Throughput of the LLM layer against a 200 ms OpenAI-compatible stub in its own process.

1. For each concurrency (64, 256): 2,000 requests through raw aiohttp (the machine's ceiling) and `factory.llm`
   (retries, the response cache, cost accounting) on its default transport, `--repeats` times each, alternating
   which goes first (medians); then a plain `AsyncOpenAI` + semaphore and `transport: sdk` once each, all in the
   same run. `ratio_to_ideal` = (N x latency / concurrency) / wall.
2. `factory build evol-instruct` (4 rounds, elimination, the response step; a real CLI process) against the
   same stub: its request rate against plain AsyncOpenAI's at concurrency 256 in the same run.
3. A long run (`--big`, default 100,000 requests, concurrency 256) fault-free and with 5 % 429s
   (Retry-After: 1) and 2 % 500s, at the same time, each in a fresh process against its own stub: every row
   must complete; peak RSS and RSS along the way show whether memory stays flat; wall time with faults is
   compared to the fault-free run's.

    python benchmarks/api_throughput.py [--n 2000] [--latency 0.2] [--big 100000] [--evol-seeds 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _results import record

from factory.llm import ChatRequest, load_llm
from factory.llm.runner import run_sync
from factory.testing.llm_stub import remote_stats, start_stub_process, stop_stub_process


def requests(n: int) -> list[ChatRequest]:
    tag = uuid.uuid4().hex[:8]  # fresh prompts each run: nothing comes from the cache
    return [ChatRequest(messages=[{"role": "user", "content": f"[{tag}] write a haiku about row {i}"}], max_tokens=32)
            for i in range(n)]


async def plain_sdk(base_url: str, reqs: list[ChatRequest], concurrency: int) -> float:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="k")  # as a user writes it (the SDK's own 2 retries)
    sem = asyncio.Semaphore(concurrency)

    async def one(r: ChatRequest) -> None:
        async with sem:
            await client.chat.completions.create(model="stub-model", messages=r.messages, max_tokens=r.max_tokens)

    start = time.perf_counter()
    # a connect timeout under load must not end the benchmark: count it; req/s counts answers only
    results = await asyncio.gather(*(one(r) for r in reqs), return_exceptions=True)
    elapsed = time.perf_counter() - start
    await client.close()
    failed = sum(isinstance(r, BaseException) for r in results)
    return elapsed * len(reqs) / max(1, len(reqs) - failed)


async def raw_aiohttp(base_url: str, reqs: list[ChatRequest], concurrency: int) -> float:
    """The ceiling on this machine: bare aiohttp posts, no SDK, no retries, no cache."""
    import json

    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     headers={"Authorization": "Bearer k"}) as session:
        async def one(r: ChatRequest) -> None:
            body = json.dumps({"model": "stub-model", "messages": r.messages, "max_tokens": r.max_tokens})
            async with sem, session.post(base_url + "/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"}) as resp:
                json.loads(await resp.read())

        start = time.perf_counter()
        await asyncio.gather(*(one(r) for r in reqs))
        return time.perf_counter() - start


def ours(home: str, reqs: list[ChatRequest], concurrency: int, transport: str = "http") -> tuple[float, object]:
    llm = load_llm("openai:stub-model", home=home, concurrency=concurrency, progress=False,
                   provider_options={"transport": transport})
    start = time.perf_counter()
    out = llm.generate_sync(reqs)
    elapsed = time.perf_counter() - start
    assert all(c.ok for c in out), [c.error for c in out if not c.ok][:3]
    return elapsed, llm.stats


def cell(n: int, ideal: float, t_plain: float, t: float) -> str:
    return f"{n / t:,.0f} req/s (ratio_to_ideal {ideal / t:.2f}; {t_plain / t:.2f}x plain)"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def big_run(n: int, concurrency: int) -> None:
    """In its own process (`--_big`): stream n requests, keep nothing but counts, report wall and RSS as JSON."""
    llm = load_llm("openai:stub-model", home=tempfile.mkdtemp(prefix="factory-bench-big-"),
                   concurrency=concurrency, progress=False)
    tag = uuid.uuid4().hex[:8]
    reqs = (ChatRequest(messages=[{"role": "user", "content": f"[{tag}] write a haiku about row {i}"}],
                        max_tokens=32) for i in range(n))  # a generator: requests are made as they are sent
    samples: dict[int, float] = {}

    async def go() -> int:
        ok = 0
        try:
            async for _, c in llm.stream(reqs, total=n):
                ok += c.ok
                if (ok % (n // 4) == 0) and ok:
                    samples[ok] = round(rss_mb(), 1)
        finally:
            await llm.aclose()
        return ok

    start = time.perf_counter()
    ok = run_sync(go())
    wall = time.perf_counter() - start
    print(json.dumps({"ok": ok, "wall": wall, "retries": llm.stats.retries, "rss": samples,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6}))  # KiB -> MB


def big_together(n: int, lat: float, conc: int, runs: dict[str, dict]) -> dict[str, tuple[dict, dict]]:
    """Each run (name -> stub fault options) in its own client process against its own stub, all at once: they
    share whatever else loads the machine, so their walls compare even when that load changes."""
    stubs = {name: start_stub_process(latency=lat, **faults) for name, faults in runs.items()}
    try:
        clients = {}
        for name, (_, url) in stubs.items():
            env = {**os.environ, "OPENAI_BASE_URL": url + "/v1", "OPENAI_API_KEY": "k"}
            clients[name] = subprocess.Popen([sys.executable, __file__, "--_big", str(n), "--_conc", str(conc)],
                                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = {}
        for name, proc in clients.items():
            stdout, stderr = proc.communicate()
            assert proc.returncode == 0, stderr[-2000:]
            out[name] = (json.loads(stdout.strip().splitlines()[-1]), remote_stats(stubs[name][1]))
        return out
    finally:
        for proc, _ in stubs.values():
            stop_stub_process(proc)


def evol_build(url: str, seeds: int, conc: int) -> tuple[float, int]:
    """Wall time and stub requests of `factory build evol-instruct` over `seeds` seed rows, 4 rounds."""
    work = Path(tempfile.mkdtemp(prefix="factory-bench-evol-"))
    home = work / "home"
    tag = uuid.uuid4().hex[:8]
    seed_file = work / "seeds.jsonl"
    seed_file.write_text("".join(json.dumps({"id": f"s{i}", "instruction": f"[{tag}] Explain how topic {i} "
                                             "works and give one example from everyday life."}) + "\n"
                                 for i in range(seeds)))
    env = {**os.environ, "OPENAI_BASE_URL": url + "/v1", "OPENAI_API_KEY": "k", "FACTORY_HOME": str(home)}
    imported = subprocess.run([sys.executable, "-m", "factory", "-q", "datasets", "import", str(seed_file), "--name",
                               "seeds"], env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    before = remote_stats(url)["requests"]
    start = time.perf_counter()
    built = subprocess.run([sys.executable, "-m", "factory", "-q", "build", "evol-instruct", "--from", "seeds",
                            "--llm", "openai:stub-model", "--set", "rounds=4", "--concurrency", str(conc)], env=env,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return time.perf_counter() - start, remote_stats(url)["requests"] - before


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--big", type=int, default=100_000, help="requests of the long run; 0: skip it")
    ap.add_argument("--only-big", action="store_true", help="run only the long run")
    ap.add_argument("--evol-seeds", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=5, help="paired raw/default runs at each concurrency")
    ap.add_argument("--_big", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_conc", type=int, default=256, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._big:
        return big_run(args._big, args._conc)
    if not args.only_big:
        short_runs(args)
    if args.big:
        long_run(args)


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def short_runs(args: argparse.Namespace) -> None:
    """Raw aiohttp and the default path `--repeats` times each, alternating which goes first; medians."""
    n, lat, reps = args.n, args.latency, args.repeats
    home = tempfile.mkdtemp(prefix="factory-bench-")
    lines = ["| concurrency | ideal | raw aiohttp (machine ceiling), median "
             "| factory.llm, default (`transport: http`), median | default / raw: median (min-max) of the paired runs "
             "| plain AsyncOpenAI + semaphore "
             "| factory.llm, `transport: sdk` | load average (1 min) during |",
             "|---|---|---|---|---|---|---|---|"]
    loads = [load()]
    proc, url = start_stub_process(latency=lat)
    try:
        os.environ.update(OPENAI_BASE_URL=url + "/v1", OPENAI_API_KEY="k")
        for conc in (64, 256):
            ideal = n * lat / conc
            raws, defaults, seen = [], [], [load()]
            for rep in range(reps):
                for which in ((0, 1) if rep % 2 == 0 else (1, 0)):
                    if which == 0:
                        raws.append(run_sync(raw_aiohttp(url + "/v1", requests(n), conc)))
                    else:
                        defaults.append(ours(home, requests(n), conc)[0])
                seen.append(load())
            t_plain = run_sync(plain_sdk(url + "/v1", requests(n), conc))
            t_sdk, _ = ours(home, requests(n), conc, "sdk")
            seen.append(load())
            plain_256 = n / t_plain
            ratios = sorted(r / d for r, d in zip(raws, defaults, strict=True))
            t_raw, t_http = statistics.median(raws), statistics.median(defaults)
            median = statistics.median(ratios)
            lines.append(f"| {conc} | {n / ideal:,.0f} req/s | {n / t_raw:,.0f} req/s (ratio_to_ideal "
                         f"{ideal / t_raw:.2f}) | {cell(n, ideal, t_plain, t_http)} | **{median:.2f}** "
                         f"({ratios[0]:.2f}-{ratios[-1]:.2f}, {reps} pairs) | {n / t_plain:,.0f} req/s "
                         f"(ratio_to_ideal {ideal / t_plain:.2f}) | {cell(n, ideal, t_plain, t_sdk)} "
                         f"| {', '.join(seen)} |")
        t_evol, evol_reqs = evol_build(url, args.evol_seeds, 256)
        t_plain = run_sync(plain_sdk(url + "/v1", requests(n), 256))
        plain_256 = max(plain_256, n / t_plain)  # the better of two plain runs: the ratio is not flattered
        loads.append(load())
    finally:
        stop_stub_process(proc)
    evol = (f"| `factory build evol-instruct` ({args.evol_seeds:,} seeds, 4 rounds, concurrency 256; whole CLI "
            f"process) | {evol_reqs:,} | {t_evol:.2f} s | {evol_reqs / t_evol:,.0f} req/s | "
            f"**{evol_reqs / t_evol / plain_256:.2f}x** plain AsyncOpenAI ({plain_256:,.0f} req/s) | {loads[-1]} |")
    record("LLM API throughput (benchmarks/api_throughput.py)", f"""
{n:,} chat requests to an OpenAI-compatible stub (aiohttp + uvloop, own process) with {lat * 1000:.0f} ms latency;
client and stub share this machine's 2 cores, so the raw aiohttp column is the most any client gets here. The
1-minute load average was {loads[0]} at the start and {loads[-1]} at the end (per row below; anything else running on
the cores lowers and blurs the numbers). Raw aiohttp and the default path run {reps} times each at each
concurrency, back to back against the same stub, alternating which goes first; "default / raw" is the median of
the paired ratios (raw wall over default wall; 1.00: as fast as the ceiling). Plain AsyncOpenAI and
`transport: sdk` run once each (they are 4-15x slower, so their noise does not change the picture).

{chr(10).join(lines)}

A multi-step scheme through the CLI, against the same stub (rows stream through the rounds: no barrier):

| run | stub requests | wall | req/s | vs plain AsyncOpenAI at 256, same run | load average (1 min) |
|---|---|---|---|---|---|
{evol}
""")


def long_run(args: argparse.Namespace) -> None:
    lat = args.latency
    before = load()
    faults = {"rate_429": 0.05, "retry_after": "1", "rate_500": 0.02, "fault_seed": 7}
    res = big_together(args.big, lat, 256, {"fault-free": {}, "5 % 429 + 2 % 500": faults})
    after = load()
    rows = []
    for label, (r, st) in res.items():
        rows.append(f"| {label} | {r['ok']:,}/{args.big:,} | {r['retries']:,} | {st['by_status']} | "
                    f"{r['wall']:.1f} s | {r['peak_mb']:.0f} MB | {r['rss']} |")
    clean, faulty = res["fault-free"][0], res["5 % 429 + 2 % 500"][0]
    record("LLM API long run (benchmarks/api_throughput.py --only-big)", f"""
{args.big:,} requests at concurrency 256 against the {lat * 1000:.0f} ms stub, fault-free and with 5 % 429s
(`Retry-After: 1`) and 2 % 500s, **both at the same time**: each in a fresh client process against a stub of its
own, so the two share whatever else loads the machine and their walls compare even when that load changes
(run one after the other, a change of load between two ~8-minute runs was larger than the effect measured).
Each client keeps only counts (RSS in MB sampled after each quarter of the rows). Load average (1 min) {before}
at the start, {after} at the end (other engineers' work on the same 2 cores, plus these 4 processes).

| run | rows completed | retries | stub saw | wall | peak RSS | RSS after rows |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

With faults the wall is **{faulty['wall'] / clean['wall']:.2f}x** the fault-free run's (goal: within 1.5x). A retry
waits outside its concurrency slot, so a `Retry-After` never idles the pool; what remains is the tail (a row that
faults near the end waits its full `Retry-After` plus another round trip), which a long run amortises.
""")


if __name__ == "__main__":
    main()
