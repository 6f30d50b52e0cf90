"""Optional evaluation of every SPIN iterate: exact match on held-out SFT rows, MT-Bench, the LM Eval Harness.

    eval:
      heldout: sft-heldout       # prompts with their answers, never trained on (or:)
      fraction: 0.1              # hold this share of --data out: SPIN self-plays and trains on the rest only
      n: 100                     # the first N held-out rows
      checker: auto              # final answers compared as train distill does (numbers, choices, code, exact)
      mt_bench_judge: claude     # MT-Bench (`factory eval mt-bench`) judged by this LLM
      lm_eval_tasks: [factory_smoke]   # lm-eval tasks (`factory eval lm-eval`), lm_eval_include: [DIR]

The SFT model is evaluated first (the table's `SFT` row, iteration -1 in spin.json), then each iterate.
Results are kept in `DIR/eval/<iter>.json`, named by what was evaluated (the checkpoint's config hash and
time, the held-out version, the settings), so a rerun evaluates only what changed; each iterate's scores go
into its `factory.json` `eval`, so its model card shows them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from factory.config import StrictModel
from factory.errors import BadInput
from factory.hashing import short_digest
from factory.records import CheckpointRecord, record_eval

log = logging.getLogger(__name__)
EXACT = "heldout-exact-match"  # the `eval` key of the held-out score in factory.json and the card


class SpinEvalConfig(StrictModel):
    heldout: str | None = Field(None, description="held-out REF (prompts with answers, not trained on)")
    fraction: float | None = Field(None, gt=0, lt=1, description="hold out this share of --data instead")
    seed: int = Field(0, description="which rows --eval-fraction holds out")
    n: int | None = Field(None, ge=1, description="evaluate on the first N held-out rows")
    max_tokens: int = Field(64, ge=1, description="longest greedy answer on the held-out rows")
    checker: str = Field("auto", description="answer checker: auto, numbers, choices, code, none (exact match)")
    batch_size: int = Field(16, ge=1)
    mt_bench_judge: str | None = Field(None, description="judge LLM spec: run MT-Bench on every iterate")
    mt_bench_questions: str | None = Field(None, description="question file (default: the 80 MT-Bench questions)")
    mt_bench_n: int | None = Field(None, ge=1, description="MT-Bench questions, spread over the categories")
    mt_bench_max_tokens: int = Field(256, ge=1)
    lm_eval_tasks: list[str] = Field(default_factory=list, description="lm-eval tasks run on every iterate")
    lm_eval_include: list[str] = Field(default_factory=list, description="directories of lm-eval task YAML")
    lm_eval_limit: float | None = Field(None, gt=0, description="examples per lm-eval task (or a fraction)")

    @model_validator(mode="after")
    def _one_heldout(self) -> SpinEvalConfig:
        if self.heldout and self.fraction:
            raise ValueError("give a held-out set (eval.heldout / --eval) or a fraction of --data to hold out "
                             "(eval.fraction / --eval-fraction), not both")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.heldout or self.fraction or self.mt_bench_judge or self.lm_eval_tasks)


class SpinEvaluator:
    """Evaluates checkpoints the same way, once each; built before anything is written, so bad settings fail early."""

    def __init__(self, store: Any, cfg: SpinEvalConfig, out: Path, name: str, heldout: Any | None, turns: str):
        from pydantic import ValidationError

        from factory.config import validation_message
        from factory.schemes.self_distill import SelfDistillConfig

        self.store, self.cfg, self.out, self.name, self.heldout = store, cfg, out, name, heldout
        try:  # an unknown checker is an error now, not after iteration 0
            SelfDistillConfig(checker=cfg.checker)
        except ValidationError as exc:
            raise BadInput(validation_message(exc, "config: eval")) from None
        self.rows: list[dict[str, Any]] = []
        self.prompts: list[list[dict[str, str]]] = []
        if heldout is not None:
            self._held_rows(turns)
        if cfg.lm_eval_tasks:
            from factory.eval.lm_eval import require_lm_eval

            require_lm_eval()
        self.judge = None
        if cfg.mt_bench_judge:
            from factory.llm import load_llm

            self.judge = load_llm(cfg.mt_bench_judge, home=store.home, progress=False)

    def _held_rows(self, turns: str) -> None:
        from factory.schemes.self_play import SelfPlay, split_row

        SelfPlay.check_inputs(list(self.heldout.manifest.columns), f"held-out set {self.heldout.ref}")
        for row in self.heldout.read().to_dicts()[: self.cfg.n]:
            split = split_row(row, turns)
            if split is not None:  # the reference: a row's `answer` column where it has one, else its answer turn
                self.rows.append({**row, "answer": row.get("answer") or split[1]})
                self.prompts.append(split[0])
        if not self.rows:
            raise BadInput(f"held-out set {self.heldout.ref} has no row with a prompt and an answer")

    def evaluate(self, label: str, model: str) -> dict[str, Any]:
        """Every configured evaluation of `model` (a directory or Hub id); `label` is `sft` or `iter_<t>`."""
        path = Path(model)
        record = CheckpointRecord.find(path) if path.is_dir() else None
        revision = f"{record.config_hash}@{record.created}" if record is not None else str(model)
        scores: dict[str, Any] = {}
        if self.rows:
            scores["heldout"] = self._cached(label, "heldout", revision, lambda: self._exact(model))
        if self.judge is not None:
            scores["mt_bench"] = self._cached(label, "mt-bench", revision, lambda: self._mt_bench(label, model,
                                                                                                  revision))
        if self.cfg.lm_eval_tasks:
            scores["lm_eval"] = self._cached(label, "lm-eval", revision, lambda: self._lm_eval(model))
        if record is not None and label != "sft":  # the iterate's card shows its scores; model_0 is the user's
            card = {**({EXACT: {"accuracy": scores["heldout"]["accuracy"]}} if "heldout" in scores else {}),
                    **({"mt-bench": scores["mt_bench"]["card"]} if scores.get("mt_bench", {}).get("card") else {}),
                    **(scores["lm_eval"]["card"] if "lm_eval" in scores else {})}
            if card and any(record.eval.get(k) != v for k, v in card.items()):
                record_eval(path, card)
        return scores

    def _cached(self, label: str, kind: str, revision: str, run: Any) -> dict[str, Any]:
        settings = self.cfg.model_dump(mode="json", exclude={"heldout", "fraction", "seed"})
        identity = short_digest({"checkpoint": revision, "kind": kind, "settings": settings,
                                 "heldout": self.heldout.ref if self.heldout is not None else None})
        file = self.out / "eval" / f"{label}.json"
        stored = json.loads(file.read_text()) if file.is_file() else {}
        if stored.get(kind, {}).get("identity") == identity:
            return stored[kind]
        log.info("SPIN: evaluating %s (%s)", label, kind)
        result = {"identity": identity, **run()}
        stored[kind] = result
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.tmp")
        tmp.write_text(json.dumps(stored, indent=2, ensure_ascii=False) + "\n")
        tmp.replace(file)
        return result

    def _exact(self, model: str) -> dict[str, Any]:
        from factory.recipes.distill_eval import evaluate

        c = self.cfg
        result = evaluate(model, self.rows, checker=c.checker, max_tokens=c.max_tokens, batch_size=c.batch_size,
                          cache_dir=self.store.home, prompts=self.prompts)
        return {"set": self.heldout.ref, **result}

    def _mt_bench(self, label: str, model: str, revision: str) -> dict[str, Any]:
        from factory.eval.mt_bench import AnswerConfig, run, summarize
        from factory.eval.questions import store_questions
        from factory.judges.mt_bench import MTBenchSingle
        from factory.judges.rubric import JudgeConfig
        from factory.llm import load_llm
        from factory.store import check_name

        c = self.cfg
        asked = store_questions(self.store, c.mt_bench_questions, c.mt_bench_n)
        spec = f"hf:{Path(model).absolute()}" if Path(model).exists() else f"hf:{model}"
        # uncached: DIR/iter_t is rewritten when an iteration is redone; the stored versions name the weights
        answerer = load_llm(spec, home=self.store.home, cache=False, batch_size=c.batch_size, progress=False)
        prefix = check_name(f"{self.name}-mt-bench-{label.replace('_', '')}-{short_digest(revision, 8)}")
        judge = MTBenchSingle(JudgeConfig(max_tokens=1024, keep_all=True, min_score=None))
        result = run(self.store, answerer, self.judge, asked, prefix, AnswerConfig(max_tokens=c.mt_bench_max_tokens),
                     judge)
        summary = summarize(result, spec, self.judge.spec, c.mt_bench_questions or "bundled MT-Bench questions")
        return {"score": summary["score"], "graded": summary["graded"], "failed": summary["failed"],
                "card": summary["eval"]["mt-bench"], "datasets": summary["datasets"]}

    def _lm_eval(self, model: str) -> dict[str, Any]:
        from factory.eval.lm_eval import card_scores, evaluate, model_args

        c = self.cfg
        limit = int(c.lm_eval_limit) if c.lm_eval_limit is not None and c.lm_eval_limit >= 1 else c.lm_eval_limit
        device = "cuda" if _cuda() else "cpu"
        results = evaluate(model_args(str(model), self.store.home / "cache"), c.lm_eval_tasks, c.lm_eval_include,
                           limit=limit, batch_size=c.batch_size, device=device)
        return {"tasks": results["tasks"], "card": card_scores(results), "lm_eval_version": results["lm_eval_version"]}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def columns(rows: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """The table's evaluation columns: (header, how to read the cell from a row's `eval`), for what was run."""
    cols: list[tuple[str, Any]] = []
    evals = [r.get("eval") or {} for r in rows]
    if any("heldout" in e for e in evals):
        cols.append(("heldout EM", lambda e: (e.get("heldout") or {}).get("accuracy")))
    if any("mt_bench" in e for e in evals):
        cols.append(("MT-Bench", lambda e: (e.get("mt_bench") or {}).get("score")))
    tasks = dict.fromkeys((t, m) for e in evals for t, ms in ((e.get("lm_eval") or {}).get("tasks") or {}).items()
                          for m in ms)
    for task, metric in tasks:
        cols.append((f"{task} {metric}",
                     lambda e, t=task, m=metric: ((e.get("lm_eval") or {}).get("tasks") or {}).get(t, {}).get(m)))
    return cols
