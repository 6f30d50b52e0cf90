"""Seed data shipped with factory (written for this project; see seeds/README.md)."""

from __future__ import annotations

from pathlib import Path

from factory.errors import BadInput

SEEDS_DIR = Path(__file__).parent / "seeds"


def seed_names() -> list[str]:
    return sorted(p.stem for p in SEEDS_DIR.glob("*.jsonl")) + sorted(p.stem for p in SEEDS_DIR.glob("*.txt"))


def seed_path(name: str) -> Path:
    for ext in (".jsonl", ".txt"):
        path = SEEDS_DIR / f"{name}{ext}"
        if path.is_file():
            return path
    raise BadInput(f"no shipped seed set {name!r} (have: {', '.join(seed_names())})")


def resolve_seed(source: str) -> str:
    """`seeds:dolly` -> the path of the shipped file; anything else is returned unchanged."""
    if source.startswith("seeds:"):
        return str(seed_path(source.split(":", 1)[1]))
    return source
