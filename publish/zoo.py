"""The zoo's memory: a local log of everything published from this factory home, and views over it.

Each publish appends one JSON line to `$FACTORY_HOME/zoo/published.jsonl` (repo, endpoint, kind, version,
commit, tags, collection, eval scores, lineage refs; never a token). `factory zoo list` reads it, and with
`--collection` joins a Hub collection's items to it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

LOG = Path("zoo") / "published.jsonl"


def log_path(home: Path) -> Path:
    return Path(home) / LOG


def append(home: Path, record: dict[str, Any]) -> None:
    path = log_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # one short line per append: whole or absent
        fh.write(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read(home: Path) -> list[dict[str, Any]]:
    path = log_path(home)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut short by a crash
            continue
    return out


def latest_by_repo(records: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(endpoint, kind, repo lower-cased) -> the newest record, with the last collection the repo was put in
    (a republish without --collection leaves the repo on its shelf)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        key = (r.get("endpoint", ""), r.get("kind", ""), r.get("repo", "").lower())
        shelf = r.get("collection") or (out.get(key) or {}).get("collection")
        out[key] = {**r, "collection": shelf}
    return out


def dataset_repo_lookup(home: Path, endpoint: str):
    """(name, version) -> (repo id, url) of the latest publish of that dataset version to `endpoint`."""
    records = [r for r in read(home) if r.get("kind") == "dataset" and r.get("endpoint") == endpoint]

    def lookup(name: str, version: str) -> tuple[str, str] | None:
        for r in reversed(records):
            if r.get("name") == name and r.get("version") == version:
                return r["repo"], r.get("url", "")
        return None

    return lookup


def scores_text(scores: dict[str, Any] | None) -> str:
    parts = []
    for bench, metrics in sorted((scores or {}).items()):
        for metric, value in sorted(metrics.items() if isinstance(metrics, dict) else [("score", metrics)]):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                parts.append(f"{bench} {metric}={value:g}")
    return ", ".join(parts)


def lineage_text(record: dict[str, Any]) -> str:
    if record.get("kind") == "model":
        return f"{record.get('method')} of {record.get('base_model')} on {', '.join(record.get('datasets') or [])}"
    chain = record.get("lineage") or []
    return " <- ".join(reversed(chain))
