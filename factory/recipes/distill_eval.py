"""Accuracy on a held-out set for `factory train distill`: greedy answers, final answers compared; and, where
asked, each model's scores on lm-eval tasks (`factory eval lm-eval`'s wrapper), with their retention too.

Each held-out row has an instruction and a reference: its `answer` column if it has one, else its `response`.
A model's answer counts as correct when the row's answer checker (numbers, choices, code; see the self-distill
scheme) extracts the same final answer from it as from the reference; rows whose reference has nothing to
extract count when the answer equals the reference after whitespace and case are normalized (exact match).

Results are kept per checkpoint in `OUT/eval/<stage>.json`, named by what was evaluated (the checkpoint's
factory.json hash, the eval set version, the settings), so a rerun evaluates only what changed. Generation
goes through `HFGenerator` without the LLM response cache: a retrained checkpoint at the same path must not
be answered from the old one's cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.hashing import short_digest
from factory.records import user_turn
from factory.schemes.self_distill import SelfDistill, SelfDistillConfig
from factory.schemes.self_distill.checkers import verdict


def reference(row: dict[str, Any]) -> str:
    return str(row.get("answer") if row.get("answer") not in (None, "") else row.get("response") or "")


def correct(checker: str, ref: str, answer: str) -> bool:
    result = verdict(checker, ref, answer)
    if result == "unchecked":
        return " ".join(answer.lower().split()) == " ".join(ref.lower().split())
    return result == "same"


def evaluate(model_dir: str | Path, rows: list[dict[str, Any]], *, checker: str, max_tokens: int, batch_size: int,
             cache_dir: Path, prompts: list[list[dict[str, str]]] | None = None) -> dict[str, Any]:
    """Greedy answers of the model in `model_dir` to `rows` (or to `prompts`, one conversation per row: SPIN's
    held-out prompts, which may carry a system turn); accuracy and the per-row outcome."""
    from factory.llm.hf_local import HFGenerator
    from factory.llm.types import ChatRequest

    picker = SelfDistill(SelfDistillConfig(checker=checker))
    generator = HFGenerator(str(model_dir), batch_size=batch_size, cache_dir=cache_dir)
    if prompts is None:
        prompts = [[{"role": "user", "content": user_turn(r)}] for r in rows]
    requests = []
    for turns in prompts:
        system = turns[0]["content"] if turns and turns[0]["role"] == "system" else None
        requests.append(ChatRequest(messages=turns[1:] if system is not None else turns, system=system,
                                    temperature=0.0, max_tokens=max_tokens))
    answers = generator.generate(requests)
    outcomes = []
    for row, completion in zip(rows, answers, strict=True):
        ref = reference(row)
        name = picker.checker_for(row, ref)
        ok = completion.ok and correct(name, ref, completion.text or "")
        outcomes.append({"id": row.get("id"), "correct": ok, "checker": name, "error": completion.error,
                         "answer": completion.text})
    right = sum(1 for o in outcomes if o["correct"])
    return {"accuracy": right / len(outcomes) if outcomes else None, "correct": right, "total": len(outcomes),
            "failed": sum(1 for o in outcomes if o["error"]), "rows": outcomes}


def cached_evaluate(stage: str, model_dir: Path, rows: list[dict[str, Any]], eval_id: str, out: Path,
                    **settings: Any) -> dict[str, Any]:
    """`evaluate`, or the stored result when this checkpoint was already evaluated on this set this way."""
    doc_path = model_dir / "factory.json"
    identity = short_digest({"checkpoint": doc_path.read_text() if doc_path.is_file() else str(model_dir),
                             "eval": eval_id, **{k: v for k, v in settings.items() if k != "cache_dir"}})
    path = out / "eval" / f"{stage}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("identity") == identity:
            return stored
    result = {"stage": stage, "model": str(model_dir), "identity": identity, **evaluate(model_dir, rows, **settings)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return result


def cached_lm_eval(stage: str, model_dir: Path, out: Path, tasks: list[str], include: list[str],
                   limit: float | None, batch_size: int, home: Path) -> dict[str, dict[str, float]]:
    """lm-eval scores {task: {metric: value}} of one checkpoint, kept in `OUT/eval/<stage>-lm-eval.json`."""
    doc_path = model_dir / "factory.json"
    identity = short_digest({"checkpoint": doc_path.read_text() if doc_path.is_file() else str(model_dir),
                             "tasks": tasks, "include": include, "limit": limit})
    path = out / "eval" / f"{stage}-lm-eval.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("identity") == identity:
            return stored["tasks"]
    from factory.eval.lm_eval import evaluate, model_args

    whole = int(limit) if limit is not None and limit >= 1 else limit
    results = evaluate(model_args(str(model_dir), home / "cache"), tasks, include, limit=whole, batch_size=batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stage": stage, "identity": identity, **results}, indent=2) + "\n")
    tmp.replace(path)
    return results["tasks"]


def results_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """model | blocks | parameters | accuracy | retention (score / the original's score), then one column per
    lm-eval task and metric where they were run: the score and its retention."""
    base = rows[0]["accuracy"] if rows else None
    lm = list(dict.fromkeys((t, m) for r in rows for t, ms in (r.get("lm_eval") or {}).items() for m in ms))
    table = []
    for r in rows:
        acc = r["accuracy"]
        retention = None if acc is None or not base else acc / base
        cells = []
        for task, metric in lm:
            value = (r.get("lm_eval") or {}).get(task, {}).get(metric)
            first = (rows[0].get("lm_eval") or {}).get(task, {}).get(metric)
            kept = f" ({value / first:.1%})" if value is not None and first else ""
            cells.append("-" if value is None else f"{value:.3f}{kept}")
        table.append([r["label"], r["blocks"], f"{r['parameters'] / 1e6:.1f}M",
                      "-" if acc is None else f"{acc:.3f} ({r['correct']}/{r['total']})",
                      "-" if retention is None else f"{retention:.1%}", *cells])
    return ["model", "blocks", "params", "accuracy", "retention", *(f"{t} {m}" for t, m in lm)], table


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
