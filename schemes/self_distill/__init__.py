"""Self-distillation: the original model rewrites SFT answers in its own words (Self-Data Distillation, SDFT).

The teacher (in the paper's recipe, the unpruned model) gets each instruction with its reference answer and
is asked to answer in its own words (`prompts/rewrite.jinja`). The rewrite becomes `response`/`messages` and
the reference is kept as `original_response`. The original is kept instead (SDFT's rule) where the rewrite
is empty, mentions "the reference answer", or reaches another final answer by the row's checker (numbers,
choices, code, none; see `checkers.py`). `distill_kept` says which text was used and `distill_reason` why;
the manifest counts both.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from factory.errors import BadInput
from factory.papers import SELF_DISTILL
from factory.records import user_turn
from factory.schemes import SCHEMES
from factory.schemes.base import COMMON_OUTPUTS, Scheme, SchemeConfig
from factory.schemes.self_distill.checkers import CHECKERS, code_blocks, final_choice, verdict
from factory.store.sources import require_columns

_MENTIONS = re.compile(r"\breference\s+(answer|response|solution)\b", re.IGNORECASE)
_GSM_OR_ANSWER_IS = re.compile(r"####|answer\s*(is|:)\s*\$?-?\d", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"\s*\$?-?\d[\d,]*(\.\d+)?\s*")  # an `answer` column: "9", "-3.5", "$1,200" (linear)


class SelfDistillConfig(SchemeConfig):
    temperature: float = Field(0.0, ge=0, description="teacher temperature (0: greedy, as in SDFT)")
    max_tokens: int = Field(512, ge=1, description="max tokens of a rewrite")
    checker: str = Field("auto", description="answer checker: auto, numbers, choices, code or none")
    task_column: str | None = Field(None, description="column naming each row's task type (for task_checkers)")
    task_checkers: dict[str, str] = Field(default_factory=dict, description="task type -> checker")

    @field_validator("checker")
    @classmethod
    def _known(cls, value: str) -> str:
        if value != "auto" and value not in CHECKERS:
            raise ValueError(f"unknown checker {value!r} (auto, {', '.join(sorted(CHECKERS))})")
        return value

    @field_validator("task_checkers")
    @classmethod
    def _known_all(cls, value: dict[str, str]) -> dict[str, str]:
        for task, name in value.items():
            if name != "auto" and name not in CHECKERS:
                raise ValueError(f"task {task}: unknown checker {name!r} (auto, {', '.join(sorted(CHECKERS))})")
        return value


def auto_checker(reference: str) -> str:
    """What a reference answer looks like it can be checked by."""
    if code_blocks(reference) is not None:
        return "code"
    if _GSM_OR_ANSWER_IS.search(reference) or (len(reference) < 64 and _BARE_NUMBER.fullmatch(reference)):
        return "numbers"
    if final_choice(reference) is not None and len(reference) < 400:
        return "choices"
    return "none"


@SCHEMES.register
class SelfDistill(Scheme):
    """The teacher rewrites each SFT answer in its own words; changed final answers keep the original (SDFT)."""

    name = "self-distill"
    small_model = ("yes: the unpruned model is the teacher by design; the checkers keep the original where "
                   "a rewrite changes the final answer")
    version = "1"
    paper = SELF_DISTILL
    inputs = {"instruction": "str", "response": "str"}
    reads = {"input": "str", "context": "str", "messages": "list[message]"}
    outputs = {**COMMON_OUTPUTS, "original_response": "str", "distill_kept": "str", "distill_reason": "str",
               "distill_checker": "str"}
    Config = SelfDistillConfig

    def check_inputs(self, columns: list[str], what: str) -> None:
        if "messages" in columns and not {"instruction", "response"} <= set(columns):
            return
        require_columns(columns, list(self.inputs), what, hint="rows need instruction and response, or messages")
        if self.config.task_checkers and self.config.task_column not in columns:
            raise BadInput(f"{what}: task_checkers need a task_column that the data has "
                           f"(task_column={self.config.task_column!r}; has: {', '.join(columns)})")

    def blank(self, row: dict[str, Any]) -> str | None:
        instruction, _, reference = self.pair(row)
        empty = [name for name, v in (("instruction", instruction), ("response", reference)) if not (v or "").strip()]
        return f"{' and '.join(empty)} is empty" if empty else None

    @staticmethod
    def pair(row: dict[str, Any]) -> tuple[str, str, str]:
        """instruction, input, reference answer; from `messages` (last user and assistant turns) if need be."""
        if row.get("instruction") and row.get("response") is not None:
            return str(row["instruction"]), str(row.get("input") or row.get("context") or ""), str(row["response"])
        messages = row.get("messages") or []
        users = [m["content"] for m in messages if m.get("role") == "user"]
        answers = [m["content"] for m in messages if m.get("role") == "assistant"]
        return (users[-1] if users else ""), "", (answers[-1] if answers else "")

    def checker_for(self, row: dict[str, Any], reference: str) -> str:
        c = self.config
        name = c.task_checkers.get(str(row.get(c.task_column))) if c.task_column else None
        name = name or c.checker
        return auto_checker(reference) if name == "auto" else name

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        pairs = [self.pair(r) for r in rows]
        prompts = [self.render("rewrite.jinja", instruction=user_turn({"instruction": i, "input": x}), reference=ref)
                   for i, x, ref in pairs]
        answers = await self.respond(llm, prompts)
        out = []
        for row, (instruction, extra, reference), answer in zip(rows, pairs, answers, strict=True):
            name = self.checker_for(row, reference)
            seed_id = str(row.get("id") or "")
            if answer.error is not None:
                out.append(self.row(instruction=instruction, input=extra, response=None, model=answer.model,
                                    seed_id=seed_id, error=answer.error, original_response=reference,
                                    distill_kept=None, distill_reason="failed", distill_checker=name))
                continue
            kept, reason = self.choose(name, reference, (answer.text or "").strip())
            self.counters[f"kept_{kept}"] += 1
            self.counters[f"reason_{reason}"] += 1
            out.append(self.row(instruction=instruction, input=extra,
                                response=answer.text.strip() if kept == "rewrite" else reference,
                                model=answer.model, seed_id=seed_id, original_response=reference, distill_kept=kept,
                                distill_reason=reason, distill_checker=name))
        return out

    @staticmethod
    def choose(checker: str, reference: str, rewrite: str) -> tuple[str, str]:
        """("rewrite" | "original", why)."""
        if not rewrite:
            return "original", "empty"
        if _MENTIONS.search(rewrite):
            return "original", "mentions_reference"
        result = verdict(checker, reference, rewrite)
        if result == "changed":
            return "original", "answer_changed"
        return "rewrite", "same_answer" if result == "same" else "unchecked"
