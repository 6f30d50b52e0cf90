"""Checkpoint directories (those holding a `factory.json`): lineage, metrics, eval results and loss curves.

The folders to look in come from `factory view --checkpoints DIR` (a checkpoint, or a folder searched a few
levels deep) and `$FACTORY_HOME/checkpoints` when it exists. Pages address a checkpoint by its number in
that list, never by a path from the request. Loss curves come from the Trainer's own log
(`trainer_state.json`'s `log_history`, at the top of the directory or in its newest `checkpoint-N/`) or a
`log_history` in `factory.json`, where either exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.errors import BadInput
from factory.records import CheckpointRecord
from factory.secrets import redact

META = "factory.json"
DEPTH = 3
_SKIP = {".git", ".venv", "node_modules", "__pycache__", "datasets", "cache"}


def discover(roots: list[Path]) -> list[Path]:
    found: list[Path] = []

    def walk(d: Path, depth: int) -> None:
        if (d / META).is_file():
            found.append(d)
        if depth == 0:
            return
        try:
            subs = sorted(p for p in d.iterdir() if p.is_dir() and p.name not in _SKIP
                          and not p.name.startswith((".", "checkpoint-")))
        except OSError:
            return
        for sub in subs:
            walk(sub, depth - 1)

    for root in roots:
        if root.is_dir():
            walk(root.absolute(), DEPTH)
    return list(dict.fromkeys(found))


def read_meta(path: Path) -> dict[str, Any]:
    """The checkpoint's record as the trainers write it (`factory.records.CheckpointRecord`, extra keys kept),
    secrets redacted; one that does not read as a record says why, under `unreadable`."""
    try:
        record = CheckpointRecord.read(path)
    except BadInput as exc:
        return {"unreadable": redact(str(exc))}
    return redact(record.document())


def log_history(path: Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    states = [path / "trainer_state.json"]
    steps = [p for p in path.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    states += [p / "trainer_state.json" for p in sorted(steps, key=lambda p: -int(p.name.split("-")[-1]))]
    for state in states:
        if state.is_file():
            try:
                history = json.loads(state.read_text()).get("log_history")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(history, list):
                return [h for h in history if isinstance(h, dict)]
    history = meta.get("log_history")
    return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


def curves(history: list[dict[str, Any]]) -> list[tuple[str, list[tuple[float, float]]]]:
    """step -> value for every loss-like key the Trainer logged (loss, eval_loss, rewards/margins, ...)."""
    keys: dict[str, list[tuple[float, float]]] = {}
    for h in history:
        step = h.get("step")
        if not isinstance(step, (int, float)):
            continue
        for k, v in h.items():
            plotted = "loss" in k or k.startswith("rewards/")
            if plotted and isinstance(v, (int, float)) and not k.startswith("train_"):
                keys.setdefault(k, []).append((float(step), float(v)))
    return sorted(keys.items())


def tables(meta: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Lists of records in factory.json (sequential stages, SPIN iterations, pruning steps) shown as tables."""
    return {k: v for k, v in meta.items()
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and k != "log_history"}


def number_series(meta: dict[str, Any]) -> dict[str, list[float]]:
    """Lists of numbers in factory.json (e.g. `prune.distances`, one per start block), plotted by position;
    pairs and shorter lists (a removed span `[start, end]`) are not a series."""
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if isinstance(v2, list) and len(v2) > 2 and all(isinstance(x, (int, float)) for x in v2):
                    out[f"{k}.{k2}"] = [float(x) for x in v2]
        elif isinstance(v, list) and len(v) > 2 and all(isinstance(x, (int, float)) for x in v):
            out[k] = [float(x) for x in v]
    return out
