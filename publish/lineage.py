"""The lineage of a dataset version, read from the manifests of the store, shaped for the cards.

`walk` returns every version upstream of (and including) a root, sources first, each once; `summarize`
picks out what a card reader asks first: the seed data, then every step in the order it ran (schemes and
their teacher models, judges with their rubrics, scoring and kept/dropped/failed counts, dedup counts), and
what it all cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.records import Paper
from factory.store import DatasetVersion, Store

# (kind, name) -> the paper(s) it declared, or None: a stage ("scheme", "evol-instruct"), a training method
# ("method", "dpo") or tuning mode ("tuning", "lora"). The CLI answers from the plugins (publish can't import them).
PaperLookup = Callable[[str, str], Any]
_RUBRIC_KEYS = ("rubric", "criteria", "min_score", "threshold", "scale")
SCORING_WORDS = {"logprobs": "scored by the probabilities of the score tokens (G-Eval)",
                 "verdict": "scored by parsing its written verdicts"}


def _node(v: DatasetVersion, papers: PaperLookup | None) -> dict[str, Any]:
    m = v.manifest
    extra = m.model_extra or {}
    # the stage's paper as its run recorded it; versions written before stages recorded theirs ask the plugin
    paper = Paper.coerce(extra.get("paper")) or next(iter(lookup_papers(papers, m.stage.kind, m.stage.name)), None)
    if paper is not None:
        paper = paper.with_key(f"{m.stage.name}{m.stage.version}")
    llm = extra.get("llm") if isinstance(extra.get("llm"), dict) else {}
    judge = extra.get("judge") if isinstance(extra.get("judge"), dict) else {}
    return {
        "ref": m.ref(), "name": m.name, "version": m.version, "created": m.created,
        "kind": m.stage.kind, "stage": m.stage.name, "stage_version": m.stage.version, "label": m.stage.label(),
        "config": m.config, "config_json": json.dumps(m.config, sort_keys=True, ensure_ascii=False, default=str),
        "rows": m.rows, "counters": dict(m.counters), "cost": m.cost.model_dump(),
        "source": _public_source(extra.get("source")), "llm": llm.get("spec") or m.config.get("llm"),
        "inputs": [i.ref() for i in m.inputs], "paper": paper.as_dict() if paper else None,
        "scoring": SCORING_WORDS.get(judge.get("scoring") or ""), "missing": False,
    }


def lookup_papers(papers: PaperLookup | None, kind: str, name: str) -> list[Paper]:
    """What `papers` answers for (kind, name): one paper, several, or none."""
    if papers is None:
        return []
    try:
        found = papers(kind, name)
        found = found if isinstance(found, (list, tuple)) else [found]
        return [p for p in (Paper.coerce(f) for f in found) if p is not None]
    except Exception:  # noqa: BLE001 - a broken plugin must not stop a publish; the card just lacks its paper
        return []


def _public_source(source: Any) -> str | None:
    """A Hub id or URL as is; a local absolute path as its file name (a card should not show a user's folders)."""
    if not source:
        return None
    text = str(source)
    return Path(text).name if Path(text).is_absolute() else text


def walk(store: Store, root: DatasetVersion, papers: PaperLookup | None = None) -> list[dict[str, Any]]:
    """`root` and every version upstream of it, sources first (an id hashes its inputs' ids: no cycles)."""
    order: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(name: str, version: str, known: DatasetVersion | None = None) -> None:
        key = f"{name}@{version}"
        if key in seen:
            return
        seen.add(key)
        v = known or store.get(name, version)
        if v is None:
            order.append({"ref": key, "name": name, "version": version, "missing": True, "inputs": []})
            return
        for i in v.manifest.inputs:
            visit(i.name, i.version)
        order.append(_node(v, papers))

    visit(root.name, root.version, root)
    return order


def summarize(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Seeds, schemes, teachers, judges, dedup and cost totals of a lineage (see module docstring)."""
    present = [n for n in nodes if not n["missing"]]
    seeds = [n for n in present if n["kind"] == "import" or not n["inputs"]]
    schemes = [n for n in present if n["kind"] == "scheme"]
    judges = []
    for n in (n for n in present if n["kind"] == "judge"):
        rubric = {k: v for k, v in n["config"].items() if any(r in k for r in _RUBRIC_KEYS)}
        judges.append({**n, "rubric": rubric, "kept": n["counters"].get("kept", n["rows"]),
                       "dropped": n["counters"].get("dropped", 0), "failed": n["counters"].get("failed", 0)})
    by_ref = {j["ref"]: j for j in judges}
    # Every step after the seeds, in the order it ran: `walk` lists inputs before what was made from them.
    steps = [by_ref.get(n["ref"], n) for n in present if n not in seeds]
    dedup = [n for n in present if "dedup" in n["stage"] or any("dup" in k for k in n["counters"])]
    totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0}
    for n in present:
        for k in totals:
            totals[k] += n["cost"].get(k, 0) or 0
    totals["usd"] = round(totals["usd"], 6)
    return {
        "seeds": seeds, "schemes": schemes, "judges": judges, "dedup": dedup, "steps": steps, "cost": totals,
        "teachers": sorted({n["llm"] for n in schemes if n["llm"]}),
        "judge_models": sorted({n["llm"] for n in judges if n["llm"]}),
        "missing": [n["ref"] for n in nodes if n["missing"]],
    }


def stage_papers(nodes: list[dict[str, Any]]) -> list[Paper]:
    """The papers the lineage's stages declared, upstream first."""
    return [Paper(**n["paper"]) for n in nodes if not n["missing"] and n.get("paper")]
