"""`factory view`: how long a page of rows takes for a 1 M-row version, against the same page of a 1 k-row one.

Both versions are written through the store's writer with the same columns (id, instruction, response,
messages, judge_score); the viewer runs as `factory view` does (uvicorn, real HTTP on the loopback), and each
request is timed from the client: send, server reads Parquet, renders HTML, response read whole. Pages
timed: the first, one in the middle (of the 1 M-row version; the 1 k-row one has 20 pages, so its last),
and a score-filtered middle page.

    python benchmarks/view_paging.py [--rows 1000000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import polars as pl
from _results import record

from factory.store import StageInfo, Store

STAGE = StageInfo(kind="scheme", name="bench", version="1")


def build(home: Path, n: int) -> str:
    i = pl.int_range(0, n, eager=True)
    df = pl.DataFrame({"i": i}).select(
        pl.format("row-{}", pl.col("i")).alias("id"),
        pl.format("Explain item {} of the catalogue in two sentences, with an example.", pl.col("i"))
        .alias("instruction"),
        pl.format("Item {} is a thing. It has properties worth knowing about, and here is one of them.",
                  pl.col("i")).alias("response"),
        (pl.col("i") % 10 + 1).cast(pl.Float64).alias("judge_score"),
    )
    df = df.with_columns(pl.concat_list(
        pl.struct(pl.lit("user").alias("role"), pl.col("instruction").alias("content")),
        pl.struct(pl.lit("assistant").alias("role"), pl.col("response").alias("content")),
    ).alias("messages"))
    with Store(home).writer("bench", stage=STAGE, config={"rows": n}) as w:
        w.write(df)
        return w.commit().version


def serve(home: Path) -> tuple[int, object]:
    import uvicorn

    from factory.view.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(Store(home)), log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return sock.getsockname()[1], server


def timed(port: int, path: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    elapsed = time.perf_counter() - t
    conn.close()
    if r.status != 200 or b'data-row="' not in body:
        raise RuntimeError(f"GET {path}: {r.status}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="factory-bench-view-"))
    try:
        big_home, small_home = work / "big", work / "small"
        t = time.perf_counter()
        big = build(big_home, args.rows)
        build_s = time.perf_counter() - t
        small = build(small_home, args.small)
        shards = len(list((big_home / "datasets" / "bench" / big / "data").glob("*.parquet")))
        (pb, _), (ps, _) = serve(big_home), serve(small_home)
        small_pages = -(-args.small // 50)
        cases = [("first page", 1, 1, ""), ("middle page", args.rows // 100, small_pages, ""),
                 ("filtered middle page (score 9..10)", args.rows // 1000, 2, "&score=judge_score&lo=9&hi=10"),
                 ("text search, first page (q=item 1)", 1, 1, "&q=item+1")]
        table = []
        for label, page_big, page_small, extra in cases:
            path_b = f"/v/bench/{big}?page={page_big}{extra}"
            path_s = f"/v/bench/{small}?page={page_small}{extra}"
            timed(pb, path_b), timed(ps, path_s)  # warm-up: file handles, template compile
            tb, ts = [], []
            for _ in range(args.repeats):  # alternate, so machine load hits both alike
                tb.append(timed(pb, path_b))
                ts.append(timed(ps, path_s))
            mb, ms = statistics.median(tb), statistics.median(ts)
            table.append(f"| {label} | {page_big:,} | {mb * 1000:.1f} ms (p90 {_p90(tb) * 1000:.1f}) | "
                         f"{ms * 1000:.1f} ms (p90 {_p90(ts) * 1000:.1f}) | {mb / ms:.2f}x |")
        load = os.getloadavg()[0]
        body = "\n".join([
            f"A page (50 rows) of a {args.rows:,}-row version ({shards} shard(s), written by the store's writer in "
            f"{build_s:.1f} s) against the same page of a {args.small:,}-row version, same run, same columns "
            "(id, instruction, response, messages, judge_score). Real HTTP to an in-process uvicorn; time from "
            f"request to the whole HTML read; median of {args.repeats} alternating requests after a warm-up. "
            f"Load average at the end: {load:.1f} (the machine is shared).",
            "",
            f"| page | page no. (1 M) | {args.rows:,} rows | {args.small:,} rows | ratio |",
            "|---|---|---|---|---|",
            *table,
            "",
            "Goal: a page of the 1 M-row version in < 300 ms. Unfiltered pages are a Parquet slice (only the row "
            "groups they need); a filtered page first scans the filter's columns for the matching row numbers, then "
            "reads only the page's rows, so it grows with the version a little. A text search scans every text "
            "column and grows with the version: it is not a page load, and is shown for what it costs.",
        ])
        record("factory view: a page of 1 M rows vs 1 k rows (benchmarks/view_paging.py)", body)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _p90(xs: list[float]) -> float:
    return sorted(xs)[int(0.9 * (len(xs) - 1))]


if __name__ == "__main__":
    main()
