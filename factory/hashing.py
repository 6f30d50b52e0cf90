"""Stable content hashes: canonical JSON in, short hex out."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SHORT = 12


# One encoder, made once: `json.dumps` with options builds a new one per call, and every LLM request is hashed.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal objects hash equally."""
    return _CANONICAL.encode(obj)


def digest(obj: Any) -> str:
    """Full sha256 hex of an object's canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def short_digest(obj: Any, length: int = SHORT) -> str:
    return digest(obj)[:length]


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, or of a directory's files (relative paths and contents)."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f is not path:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
