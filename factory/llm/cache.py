"""The response cache, which is also what makes a run resumable.

Every successful answer is stored under its request's key (a hash of provider, model, parameters and
messages) the moment it arrives, in SQLite in WAL mode: a committed row survives `kill -9`. A rerun
looks keys up first and sends nothing for what is already answered. Failures are never cached, so a
rerun retries them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from factory.llm.types import Completion

_FIELDS = ("texts", "finish_reason", "prompt_tokens", "completion_tokens", "model", "latency_s", "cost_usd")


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit: each answer is its own transaction, durable before the row counts as done
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: safe against process crashes
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                        "created REAL NOT NULL)")

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Completion] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self.db.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk):
                found[key] = Completion(**json.loads(value), cached=True)
        return found

    def put_many(self, items: list[tuple[str, Completion]]) -> None:
        """Store answers in one transaction (failures are skipped: a rerun must retry them)."""
        now = time.time()
        rows = [(key, json.dumps({k: getattr(c, k) for k in _FIELDS}, ensure_ascii=False), now)
                for key, c in items if c.error is None]
        if not rows:
            return
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", rows)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self.db.close()
