"""What is being built right now, from what the store and the LLM cache record on disk.

A writer streams shards into `datasets/<name>/.tmp-<version>-<pid>/data/part-*.parquet` and renames the
directory into place when it commits; the LLM layer caches every answer in `cache/llm.sqlite` the moment
it arrives (with its tokens, cost and time). So a run in progress shows as a temp directory whose process
is alive (rows flushed so far, newest rows) and as recent answers in the cache (answers, req/s, tokens, $).
Rows a writer still buffers in memory are not on disk yet, and the page says so rather than guess.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from factory.store import Store
from factory.store.writer import pid_alive

WINDOW_S = 60
LATEST = 5


def writes(store: Store) -> list[dict[str, Any]]:
    """Versions being written: one entry per `.tmp-*` directory."""
    import polars as pl

    out = []
    if not store.datasets_dir.is_dir():
        return out
    for name in store.names():
        for tmp in sorted((store.datasets_dir / name).glob(".tmp-*")):
            version, _, pid = tmp.name[len(".tmp-"):].rpartition("-")
            parts = sorted((tmp / "data").glob("*.parquet"))
            rows, latest = 0, []
            for part in parts:
                try:
                    rows += pl.scan_parquet(part).select(pl.len()).collect().item()
                except Exception:  # a shard being written right now is not readable yet
                    continue
            if parts:
                try:
                    latest = [{k: str(v)[:200] for k, v in r.items()}
                              for r in pl.scan_parquet(parts[-1]).tail(LATEST).collect().to_dicts()]
                except Exception:
                    latest = []
            mtime = max([p.stat().st_mtime for p in parts] + [tmp.stat().st_mtime])
            out.append({"name": name, "version": version, "pid": int(pid) if pid.isdigit() else None,
                        "alive": pid.isdigit() and pid_alive(int(pid)), "shards": len(parts), "rows": rows,
                        "updated_s": round(time.time() - mtime, 1), "latest": latest})
    return out


def llm_activity(home: Path, window_s: int = WINDOW_S) -> dict[str, Any] | None:
    """Answers cached in the last `window_s` seconds and in the last hour: counts, rate, tokens, dollars."""
    path = home / "cache" / "llm.sqlite"
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        now = time.time()
        total = db.execute("SELECT COUNT(*), MAX(created) FROM responses").fetchone()
        recent = _window(db, now - window_s)
        hour = _window(db, now - 3600)
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return {"answers": total[0], "last_answer_s": round(now - total[1], 1) if total[1] else None,
            "window_s": window_s, "recent": recent, "rate": round(recent["answers"] / window_s, 2), "hour": hour}


def _window(db: sqlite3.Connection, since: float) -> dict[str, Any]:
    answers, tokens, usd = 0, 0, 0.0
    for (value,) in db.execute("SELECT value FROM responses WHERE created >= ?", (since,)):
        answers += 1
        try:
            v = json.loads(value)
        except ValueError:
            continue
        tokens += int(v.get("prompt_tokens") or 0) + int(v.get("completion_tokens") or 0)
        usd += float(v.get("cost_usd") or 0.0)
    return {"answers": answers, "tokens": tokens, "usd": round(usd, 6)}


def snapshot(store: Store) -> dict[str, Any]:
    return {"writes": writes(store), "llm": llm_activity(store.home), "time": time.time()}
