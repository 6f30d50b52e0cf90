"""`factory eval mt-bench`: a model answers the MT-Bench questions turn by turn, a judge grades every turn.

Each step is a stored dataset version, so an interrupted or repeated evaluation pays only for what is
missing: the questions, the model's answers (`mt-bench-answer` stage), one row per turn to grade, and
the judge's grades (the `mt-bench-single` rubric, with reference answers for math, reasoning and coding
as MT-Bench does). The result is per-category and per-turn mean scores, as a table and as JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from factory import __version__
from factory.config import StrictModel
from factory.llm.types import ChatRequest
from factory.pipeline.execute import run_stage
from factory.pipeline.stage import Stage, polars_type
from factory.store import DatasetVersion, InputRef, StageInfo, Store
from factory.store.manifest import now_iso

# Categories whose questions have one right answer: the judge sees the reference answer (as in MT-Bench).
REFERENCE_CATEGORIES = ("math", "reasoning", "coding")
# MT-Bench's sampling temperature per category: creative writing samples, problems with a right answer don't.
CATEGORY_TEMPERATURE = {"writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
                        "reasoning": 0.0, "stem": 0.1, "humanities": 0.1}
TURNS_STAGE = StageInfo(kind="transform", name="mt-bench-turns", version="1")


class AnswerConfig(StrictModel):
    max_tokens: int = 1024
    temperature: float | None = None  # None: MT-Bench's temperature for the question's category
    system: str | None = None


class MTBenchAnswer(Stage):
    """A model answers multi-turn questions: turn 2 is asked with the model's own turn-1 answer in context."""

    kind = "stage"
    name = "mt-bench-answer"
    version = "1"
    inputs = {"category": "str", "turns": "list[str]"}
    prompt_columns = ("turns",)
    outputs = {"answers": "list[str]", "messages": "list[message]", "model": "str", "error": "str"}
    Config = AnswerConfig
    config: AnswerConfig

    def request(self, row: dict[str, Any], history: list[dict[str, str]], turn: int) -> ChatRequest:
        c = self.config
        temperature = c.temperature if c.temperature is not None else CATEGORY_TEMPERATURE.get(row["category"], 0.7)
        return ChatRequest(messages=[*history, {"role": "user", "content": row["turns"][turn]}], system=c.system,
                           temperature=temperature, max_tokens=c.max_tokens)

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        history: list[list[dict[str, str]]] = [[] for _ in rows]
        answers: list[list[str | None]] = [[None] * len(r["turns"]) for r in rows]
        errors: list[str | None] = [None] * len(rows)
        models: list[str | None] = [None] * len(rows)
        for turn in range(max(len(r["turns"]) for r in rows)):
            todo = [i for i, r in enumerate(rows) if errors[i] is None and turn < len(r["turns"])]
            done = await llm.generate([self.request(rows[i], history[i], turn) for i in todo])
            for i, c in zip(todo, done, strict=True):
                models[i] = c.model
                if not c.ok:
                    errors[i] = f"turn {turn + 1}: {c.error}"
                    continue
                answers[i][turn] = c.text
                history[i] += [{"role": "user", "content": rows[i]["turns"][turn]},
                               {"role": "assistant", "content": c.text or ""}]
        return [{**row, "answers": answers[i], "messages": history[i], "model": models[i], "error": errors[i]}
                for i, row in enumerate(rows)]


def store_turns(store: Store, answers: DatasetVersion, name: str,
                reference_categories: tuple[str, ...] = REFERENCE_CATEGORIES) -> DatasetVersion:
    """One row per (question, turn) for the judge: the question, the answer, earlier turns, the reference."""
    import polars as pl

    config = {"reference_categories": sorted(reference_categories)}
    with store.writer(name, stage=TURNS_STAGE, config=config,
                      inputs=[InputRef(name=answers.name, version=answers.version)]) as w:
        if w.exists:
            store.set_latest(name, w.version)
            return w.existing
        rows = []
        for q in answers.read().iter_rows(named=True):
            refs = q.get("reference") or []
            for t, question in enumerate(q["turns"]):
                answer = q["answers"][t] if q["answers"] and t < len(q["answers"]) else None
                use_ref = q["category"] in reference_categories and t < len(refs) and refs[t]
                rows.append({"question_id": q["question_id"], "category": q["category"], "turn": t + 1,
                             "instruction": question, "response": answer, "history": (q["messages"] or [])[:2 * t],
                             "reference": refs[t] if use_ref else None, "answer_error": q["error"]})
        schema = {"category": pl.String, "turn": pl.Int64, "instruction": pl.String, "response": pl.String,
                  "history": polars_type("list[message]"), "reference": pl.String, "answer_error": pl.String}
        w.write(pl.DataFrame(rows, schema_overrides=schema))
        return w.commit(counters={"turns": len(rows)})


@dataclass
class MTBenchRun:
    questions: DatasetVersion
    answers: DatasetVersion
    judgments: DatasetVersion


def run(store: Store, model_llm: Any, judge_llm: Any, questions: DatasetVersion, prefix: str,
        answer_config: AnswerConfig, judge: Stage) -> MTBenchRun:
    """Answer, explode into turns, grade: three cached, resumable stored steps.

    `judge` grades one turn a row (`instruction`, `response`, `history`, `reference`) into `judge_score`, keeping
    every row: the `mt-bench-single` judge with `keep_all`, which the caller (above the plugins) builds.
    """
    answers = run_stage(store, MTBenchAnswer(answer_config), model_llm, questions, f"{prefix}-answers").version
    turns = store_turns(store, answers, f"{prefix}-turns")
    judgments = run_stage(store, judge, judge_llm, turns, f"{prefix}-judgments").version
    return MTBenchRun(questions, answers, judgments)


def summarize(result: MTBenchRun, model: str, judge: str, source: str) -> dict[str, Any]:
    """Per-category and per-turn mean scores, and the overall mean over every graded turn (MT-Bench's score)."""
    import polars as pl

    df = result.judgments.read()

    def mean(frame: pl.DataFrame) -> float | None:
        graded = frame["judge_score"].drop_nulls()
        return round(float(graded.mean()), 4) if len(graded) else None

    def turns(frame: pl.DataFrame) -> dict[str, float | None]:
        return {str(t): mean(frame.filter(pl.col("turn") == t)) for t in sorted(frame["turn"].unique().to_list())}

    categories = {}
    for category in dict.fromkeys(df["category"].to_list()):
        part = df.filter(pl.col("category") == category)
        categories[category] = {"score": mean(part), "turns": turns(part),
                                "questions": part["question_id"].n_unique(),
                                "graded": part["judge_score"].count(), "failed": part["judge_score"].null_count()}
    rubric = (getattr(result.judgments.manifest, "judge", None) or {}).get("rubric", {})
    out = {
        "benchmark": "mt-bench", "model": model, "judge": judge,
        "rubric": {"name": rubric.get("name"), "version": rubric.get("version")},
        "score": mean(df), "turns": turns(df), "categories": categories,
        "questions": df["question_id"].n_unique(), "graded": df["judge_score"].count(),
        "failed": df["judge_score"].null_count(), "questions_source": source,
        "datasets": {"questions": result.questions.ref, "answers": result.answers.ref,
                     "judgments": result.judgments.ref},
        "cost_usd": {"answers": result.answers.manifest.cost.usd, "judge": result.judgments.manifest.cost.usd},
        "created": now_iso(), "factory_version": __version__,
    }
    out["eval"] = {"mt-bench": card_scores(out)}  # the shape checkpoints' factory.json and model cards take
    return out


def card_scores(results: dict[str, Any]) -> dict[str, float]:
    """The numbers a model card shows (`{"score", "turn_1", "turn_2"}`): a checkpoint's `eval["mt-bench"]`."""
    scores = {"score": results["score"], **{f"turn_{t}": v for t, v in results["turns"].items()}}
    return {k: v for k, v in scores.items() if v is not None}


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The category table: one row per category, then the overall row."""
    turn_names = sorted({t for c in results["categories"].values() for t in c["turns"]}, key=int)

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    headers = ["category", "questions", *(f"turn {t}" for t in turn_names), "score", "failed"]
    rows = [[name, c["questions"], *(fmt(c["turns"].get(t)) for t in turn_names), fmt(c["score"]), c["failed"]]
            for name, c in results["categories"].items()]
    rows.append(["overall", results["questions"], *(fmt(results["turns"].get(t)) for t in turn_names),
                 fmt(results["score"]), results["failed"]])
    return headers, rows


def slug(spec: str) -> str:
    """A dataset-name-safe short name for a model spec: `hf:/ckpt/dpo` -> `dpo`, `openai:gpt-4o` -> `gpt-4o`."""
    tail = spec.split(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-._")[:48] or "local"
