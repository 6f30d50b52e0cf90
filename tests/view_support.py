"""Shared by the viewer tests: a small store with a lineage, and the real `factory view` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from factory.store import InputRef, StageInfo, Store
from tests.helpers import REPO

XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
SECRET = "sk-test-do-not-show-9f8e7d"
ROWS = 120


def build_store(home: Path) -> dict[str, str]:
    """seed (import) -> gen (scheme, 120 chat rows, judge_score 1..10) -> gen-judged (judge, score >= 5)."""
    store = Store(home)
    rows = []
    for i in range(ROWS):
        instr = f"Question {i}: explain item {i}"
        resp = XSS if i == 3 else f"Answer {i}.\n```python\nprint({i})\n```\nDone."
        rows.append({"id": f"r{i}", "instruction": instr, "input": "", "response": resp,
                     "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": instr},
                                  {"role": "assistant", "content": resp}],
                     "judge_score": float(i % 10 + 1)})
    with store.writer("seed", stage=StageInfo(kind="import", name="import", version="1"),
                      config={"format": "jsonl"}) as w:
        w.write([{k: r[k] for k in ("id", "instruction", "input")} for r in rows])
        seed = w.commit(counters={"rows_read": ROWS})
    with store.writer("gen", stage=StageInfo(kind="scheme", name="evol-instruct", version="1"),
                      config={"model": "openai:gpt-4o-mini", "api_key": SECRET},
                      inputs=[InputRef(name=seed.name, version=seed.version)]) as w:
        w.write(rows)
        gen = w.commit(counters={"kept": ROWS, "failed": 0})
    judged_rows = [r for r in rows if r["judge_score"] >= 5]
    with store.writer("gen-judged", stage=StageInfo(kind="judge", name="quality", version="1"),
                      config={"min_score": 5}, inputs=[InputRef(name=gen.name, version=gen.version)]) as w:
        w.write(judged_rows)
        judged = w.commit(counters={"kept": len(judged_rows), "dropped": ROWS - len(judged_rows)})
    return {"seed": seed.version, "gen": gen.version, "judged": judged.version}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ViewServer:
    """`python -m factory view ...` as a user starts it; stopped (by its own pid) on exit."""

    def __init__(self, home: Path, *args: str, host: str = "127.0.0.1", env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "factory", "--home", str(home), "view", "--host", host, "--port",
               str(self.port), *args]
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.banner = ""

    def __enter__(self) -> ViewServer:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"factory view exited: {self.proc.stderr.read()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("factory view did not start listening")
        os.set_blocking(self.proc.stderr.fileno(), False)
        self.banner = self.proc.stderr.read() or ""
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def get(self, path: str, headers: dict | None = None, data: bytes | None = None) -> tuple[int, dict, str]:
        req = urllib.request.Request(self.url + path, headers=headers or {}, data=data)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
