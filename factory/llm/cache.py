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

_FIELDS = ("texts", "finish_reason", "prompt_tokens", "completion_tokens", "model", "latency_s", "cost_usd",
           "choice_probs")


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
        # Batches in flight (`--batch`): which batch holds which request, so a rerun polls instead of resubmitting.
        self.db.execute("CREATE TABLE IF NOT EXISTS batch_requests (key TEXT NOT NULL, spec TEXT NOT NULL, "
                        "batch_id TEXT NOT NULL, custom_id TEXT NOT NULL, created REAL NOT NULL, "
                        "PRIMARY KEY (batch_id, custom_id))")
        self.db.execute("CREATE INDEX IF NOT EXISTS batch_requests_key ON batch_requests (key, spec)")

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

    def record_batch(self, batch_id: str, spec: str, members: dict[str, str]) -> None:
        """Remember that batch `batch_id` of `spec` holds these requests (`custom_id -> key`), durably."""
        now = time.time()
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR REPLACE INTO batch_requests VALUES (?, ?, ?, ?, ?)",
                                [(key, spec, batch_id, cid, now) for cid, key in members.items()])
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def pending_batches(self, keys: list[str], spec: str) -> dict[str, tuple[str, str]]:
        """key -> (batch id, custom id) for those of `keys` a recorded, unfinished batch of `spec` holds."""
        found: dict[str, tuple[str, str]] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for key, bid, cid in self.db.execute(f"SELECT key, batch_id, custom_id FROM batch_requests "
                                                 f"WHERE spec = ? AND key IN ({marks}) ORDER BY created",
                                                 [spec, *chunk]):
                found[key] = (bid, cid)  # the newest batch of a request wins
        return found

    def batch_members(self, batch_id: str) -> dict[str, str]:
        return dict(self.db.execute("SELECT custom_id, key FROM batch_requests WHERE batch_id = ?", (batch_id,)))

    def finish_batch(self, batch_id: str) -> None:
        """Forget a batch whose results are all stored (answers cached, failures handed on)."""
        self.db.execute("DELETE FROM batch_requests WHERE batch_id = ?", (batch_id,))

    def delete(self, keys: Iterable[str]) -> None:
        """Drop answers that turned out unusable (one transaction)."""
        keys = list(keys)
        if keys:
            self.db.executemany("DELETE FROM responses WHERE key = ?", [(k,) for k in keys])

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self.db.close()
