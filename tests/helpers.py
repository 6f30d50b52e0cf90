"""Small helpers shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_factory(*args: str, home: Path, env: dict | None = None, timeout: float = 120,
                cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `factory` entry point in a subprocess, as a user runs it: from outside the repository (by
    default the home's parent), so nothing in the repo's folders can stand in for the installed package."""
    full_env = {**os.environ, "FACTORY_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or home.parent)
